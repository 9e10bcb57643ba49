"""Airflow's public REST API (``/api/v2``), as a user's own scheduler would drive it: the client the
system and distributed suites use to trigger runs, clear tasks and read states, XComs and logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from .procs import wait_until

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApi:
    """Airflow's public REST API (``/api/v2``) as a user's own scheduler would drive it."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.client = httpx.Client(base_url=base_url, timeout=30.0)
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            resp = self.client.post(
                "/auth/token", json={"username": self.username, "password": self.password}
            )
            resp.raise_for_status()
            self._token = str(resp.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        extra_headers = kwargs.pop("headers", None) or {}
        for _ in range(2):
            headers = {**extra_headers, "Authorization": f"Bearer {self.token()}"}
            resp = self.client.request(method, f"/api/v2{path}", headers=headers, **kwargs)
            if resp.status_code != 401:
                return resp
            self._token = None
        return resp

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        if resp.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    # -- DAGs and runs --------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        """Start a manual run (the DAG is unpaused first: the deployment creates DAGs paused)."""
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def clear(self, dag_id: str, run_id: str, task_ids: list[str]) -> None:
        """Clear these tasks of a run and their downstream, as the UI's Clear button does."""
        body = {
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "include_downstream": True,
            "only_failed": False,
            "dry_run": False,
            "reset_dag_runs": True,
        }
        self.call("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        return result

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 180.0,
        *,
        interval: float = 1.0,
        on_poll: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        """Poll the run until it is finished; returns it (whatever its state). ``on_poll`` runs
        before each poll (a test sampling what the run stores while it is live)."""
        run: dict[str, Any] = {}

        def done() -> bool:
            if on_poll is not None:
                on_poll()
            run.update(self.dag_run(dag_id, run_id))
            return run["state"] in TERMINAL_RUN_STATES

        try:
            wait_until(done, timeout, interval, f"dag run {dag_id}/{run_id} to finish")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; task states: {self.states(dag_id, run_id)}") from None
        return run

    def task_instances(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """Every task instance of a run (each map index of a mapped task is one)."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": 100, "offset": offset}
            if task_id:
                params["task_id"] = task_id
            page = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", **params)
            out.extend(page["task_instances"])
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                return out

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {
            f"{ti['task_id']}[{ti['map_index']}]": ti["state"] for ti in self.task_instances(dag_id, run_id)
        }

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            map_index=map_index,
            deserialize=True,
        )
        value = entry["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """One task instance, with its ``rendered_fields`` (what the Rendered tab shows)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        result: dict[str, Any] = self.get(path + (f"/{map_index}" if map_index >= 0 else ""))
        return result

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> str | None:
        """The whole log of one try, as the API serves it (JSON text of its structured lines), or
        ``None`` when the API answers 404 "TaskInstance not found" for that try (seen once under
        load for a deferrable sensor of a finished run; the log file on disk is still there)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        params = {"full_content": True, "map_index": map_index}
        resp = self.request("GET", path, params=params, headers={"Accept": "application/json"})
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise AssertionError(f"GET {path} -> {resp.status_code}: {resp.text[:2000]}")
        return resp.text

    def xcom_entries(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every XCom entry of a run (every task, key and map index), without values."""
        page = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries", limit=1000)
        entries: list[dict[str, Any]] = page["xcom_entries"]
        assert len(entries) == page["total_entries"], "more XCom entries than one page"
        return entries

    def xcom_raw(self, dag_id: str, run_id: str, entry: dict[str, Any], **params: Any) -> str:
        """The response text of one XCom entry (``params``: ``deserialize``, ``stringify``)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{entry['task_id']}/xcomEntries/{entry['key']}"
        resp = self.request("GET", path, params={"map_index": entry["map_index"], **params})
        if resp.status_code >= 400:
            raise AssertionError(f"GET {path} -> {resp.status_code}: {resp.text[:2000]}")
        return resp.text

    def set_variable(self, key: str, value: str) -> None:
        """Create or replace an Airflow Variable (as a user does in Admin > Variables)."""
        if self.request("GET", f"/variables/{key}").status_code == 200:
            self.call("PATCH", f"/variables/{key}", json={"key": key, "value": value})
        else:
            self.call("POST", "/variables", json={"key": key, "value": value})

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, map_index: int, new_state: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        if map_index >= 0:
            path += f"/{map_index}"
        return self.call("PATCH", path, json={"new_state": new_state})
