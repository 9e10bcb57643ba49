"""The fault half of :class:`~.client.EmulatorHandle`: inject, script, list and clear the
emulator's fault rules (``/_emulator/faults``; what each action does: :mod:`.faults`), and skew
Vapi's clock against the test's (:meth:`FaultControls.set_clock_offset`)."""

from __future__ import annotations

from typing import Any


class FaultControls:
    """Mixin of :class:`~.client.EmulatorHandle`; it sends through the handle's admin client."""

    def _get(self, route: str, **params: Any) -> Any:
        raise NotImplementedError  # the handle's

    def _send(self, method: str, route: str, body: Any = None) -> Any:
        raise NotImplementedError  # the handle's

    def fault(
        self,
        action: str | int,
        *,
        method: str = "*",
        path: str = "*",
        query: dict[str, str] | None = None,
        times: int = 1,
        rate: float | None = None,
        retry_after: float = 1.0,
    ) -> dict[str, Any]:
        """Inject one fault: ``action`` is a status (``429``, ``500``...), ``"drop"`` (answer lost
        after the request was processed), ``"delay:S"``, ``"late:S"`` (processed only after S
        seconds, even if the client gave up), ``"stall:S"`` (processed at once, answered S seconds
        later), ``"garbage:html"`` / ``"garbage:null"`` /
        ``"garbage:truncated"`` (processed, answered 2xx with a broken body) or ``"ok"``. It hits the
        next ``times`` matching requests, or each one with probability ``rate``; ``query``
        (``{"createdAtGe": "*"}``, ``"*"``: any value) narrows the matching requests."""
        spec = self._fault_spec(method, path, query, retry_after)
        spec["action"] = str(action)
        if rate is None:
            spec["times"] = times
        else:
            spec["rate"] = rate
        result: list[dict[str, Any]] = self._send("POST", "/faults", spec)
        return result[0]

    def faults(
        self,
        sequence: list[str | int],
        *,
        method: str = "*",
        path: str = "*",
        query: dict[str, str] | None = None,
        retry_after: float = 1.0,
    ) -> dict[str, Any]:
        """Script the next matching requests: ``["429", "drop", "ok", 500]``, one action each."""
        spec = self._fault_spec(method, path, query, retry_after)
        spec["sequence"] = [str(a) for a in sequence]
        result: list[dict[str, Any]] = self._send("POST", "/faults", spec)
        return result[0]

    @staticmethod
    def _fault_spec(
        method: str, path: str, query: dict[str, str] | None, retry_after: float
    ) -> dict[str, Any]:
        """What every fault rule's admin-API form has: which requests it matches, its Retry-After."""
        spec: dict[str, Any] = {"method": method, "path": path, "retryAfter": retry_after}
        if query is not None:
            spec["query"] = query
        return spec

    def active_faults(self) -> list[dict[str, Any]]:
        """The fault rules still active."""
        result: list[dict[str, Any]] = self._get("/faults")
        return result

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._send("DELETE", "/faults")

    def set_clock_offset(self, seconds: float) -> None:
        """Run Vapi's clock ``seconds`` ahead of the test's (negative: behind) from now on: every
        timestamp stamped from now on (``createdAt``, ``updatedAt``, ``startedAt``, ``endedAt``...
        of calls, campaigns, structured outputs) and every time filter (``createdAtGe``...) uses
        it; stamps already made stay. Calls under way keep their pace (nothing jumps ahead in its
        life cycle). The value in force: ``health()["clockOffsetSeconds"]`` and ``config()``;
        ``reset()`` restores the start-up offset (``clock_offset=`` / ``--clock-offset``)."""
        self._send("PATCH", "/config", {"clockOffsetSeconds": seconds})
