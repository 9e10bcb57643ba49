"""The account's saved resources, read as they are (raw JSON): assistants, phone numbers, and one
saved object by id. A part of :class:`~airflow_provider_vapi.hook.core.VapiHook` (a mixin), on the hook's
generator protocol (:mod:`airflow_provider_vapi.wire.transport`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_vapi.wire.ids import path_segment
from airflow_provider_vapi.wire.transport import Op, Send

T = TypeVar("T")


class SavedResources:
    """``list_assistants``, ``get_assistant``, ``list_phone_numbers`` and their async twins."""

    if TYPE_CHECKING:  # given by VapiHook

        def _run(self, op: Op[T]) -> T: ...

        async def _arun(self, op: Op[T]) -> T: ...

        def _read_op(self, step: Send, expect: type[T], call_id: str | None = None) -> Op[T]: ...

    def _list_op(self, path: str, limit: int | None) -> Op[list[dict[str, Any]]]:
        params = {"limit": limit} if limit else None
        return (yield from self._read_op(Send("GET", path, params=params), list[dict[str, Any]]))

    def list_assistants(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The account's assistants (raw JSON objects)."""
        return self._run(self._list_op("/assistant", limit))

    async def alist_assistants(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._arun(self._list_op("/assistant", limit))

    def _get_op(self, route: str, param: str, value: str) -> Op[dict[str, Any]]:
        """``GET {route}/{value}``, ``value`` checked as a Vapi id first (:mod:`~.ids`)."""
        step = Send("GET", f"{route}/{path_segment(value, param)}")
        return (yield from self._read_op(step, dict[str, Any]))

    def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        """One saved assistant (raw JSON): its ``artifactPlan`` and ``analysisPlan`` say which
        results its calls get."""
        return self._run(self._get_op("/assistant", "assistant_id", assistant_id))

    async def aget_assistant(self, assistant_id: str) -> dict[str, Any]:
        return await self._arun(self._get_op("/assistant", "assistant_id", assistant_id))

    def list_phone_numbers(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The account's phone numbers (raw JSON objects)."""
        return self._run(self._list_op("/phone-number", limit))

    async def alist_phone_numbers(self, limit: int | None = None) -> list[dict[str, Any]]:
        return await self._arun(self._list_op("/phone-number", limit))


__all__ = ["SavedResources"]
