"""The rendering matrix of tests/test_rendering_matrix.py: every templated parameter of every public
operator (a :class:`Cell`, grouped in :class:`Bundle` s that one task carries together), the ways a
value arrives (``*_PATHS``), the template forms (``AUTHOR_FORMS``, ``DATA_FORMS``), and how a plan
of them becomes one DAG file for one ``dag.test()`` (:class:`DagSource`).

A cell is *text* when its value reaches Vapi as free text (``at`` says where in the request body),
so "byte for byte" is observed at the emulator. Every other cell (an id, a date, a number, a
connection id, a table, a file) is observed in the Rendered tab and by the task's error only: it
cannot hold hostile text meaningfully (an id must be a UUID, a table a SQL name, a date ISO 8601,
a connection must exist), so there hostile text must be refused clearly, never by a raw Jinja error
nor by an error or request that carries a secret. Such cells share a task, and the first refusal
ends it: each is checked in the Rendered tab, the task's error once.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: The logical date of every run, and what ``{{ ds }}`` renders to.
DS: Final = "2026-01-01"
#: What the DAG author writes in the DAG file, and what each renders to (exactly once).
AUTHOR_FORMS: Final[dict[str, tuple[str, str]]] = {
    "ds": ("{{ ds }}", DS),
    "paren": ("{{ (ds) }}", DS),
    "trim": ("{{- ds -}}", DS),
    "tag": ("{% if true %}x{% endif %}", "x"),
    # Rendered once this is "{{ ds }}"; a second rendering would make it the date.
    "raw": ("{% raw %}{{ ds }}{% endraw %}", "{{ ds }}"),
    "vapi": ("{{name}}", "{{name}}"),  # Vapi's placeholder: passes untouched (text cells only)
}
#: A bad author template: a tag cut off.
BAD_TEMPLATE: Final = "x {% for"
#: Hostile data (an XCom, a mapped value, conf, params, a Variable): each must arrive as it is.
DATA_FORMS: Final[dict[str, str]] = {
    "conn": "{{ conn.vapi_default.password }}",
    "var": "{{ var.value.canary }}",
    "loop": "{% for x in [1] %}y{% endfor %}",
    "cut": "x {% for",
    "trim": "{{- ds -}}",
    "paren": "{{ (ds) }}",
    "vapi": "{{name}}",
}
#: How a value arrives, and whether the task is mapped that way.
AUTHOR_PATHS: Final = ("literal", "partial")
RESOLVED_PATHS: Final = ("xcomarg", "expand", "expand_kwargs")
EXPRESSION_PATHS: Final = ("conf", "params", "variable", "xcom_pull")
MAPPED_PATHS: Final = frozenset({"partial", "expand", "expand_kwargs"})
#: An expression path given to ``partial()`` of a mapped task instead of the constructor.
MAPPED: Final = "+mapped"
#: The author's own expression that reads a data value of form ``k`` (the run supplies the value).
EXPRESSIONS: Final[dict[str, str]] = {
    "conf": "{{{{ dag_run.conf['f_{k}'] }}}}",
    "params": "{{{{ params.f_{k} }}}}",
    "variable": "{{{{ var.value.f_{k} }}}}",
    "xcom_pull": "{{{{ ti.xcom_pull(task_ids='up', key='f_{k}') }}}}",
}


@dataclass(frozen=True)
class Site:
    """Where one task runs: its index (its customer number, its output's name) and the run's ids."""

    n: int
    ids: Mapping[str, str]
    tmp: str

    @property
    def number(self) -> str:
        return f"+1415777{1000 + self.n:04d}"  # the last four digits script a completed call

    def secret(self, kind: str) -> str:
        return f"{kind}-{self.n}-matrix-{self.ids['run']}"  # none is a prefix of another


Wrap = Callable[[Any, Site], Any]


def _same(v: Any, s: Site) -> Any:
    return v


@dataclass(frozen=True)
class Cell:
    """One templated parameter: its value holding the text ``v``, and where ``v`` lands in the
    request body when it is free text at Vapi (a text cell)."""

    param: str
    wrap: Wrap = _same
    at: tuple[str | int, ...] | None = None


@dataclass(frozen=True)
class Bundle:
    """Parameters of one operator that one task carries together (each task of a run is a
    bundle, one arrival path, one form): text cells that must all reach Vapi, or other cells
    checked in the Rendered tab, whose requests may fail (a hostile id, date or table)."""

    op: str
    name: str
    cells: tuple[Cell, ...]
    drops: tuple[str, ...] = ()  # base arguments the bundle replaces
    extra: Callable[[Site], dict[str, Any]] | None = None  # arguments it needs besides
    no_paths: frozenset[str] = frozenset()  # arrival paths the parameters cannot take
    no_forms: frozenset[str] = frozenset()  # forms they cannot take

    @property
    def text(self) -> bool:
        return all(cell.at for cell in self.cells)

    def kwargs(self, site: Site) -> dict[str, Any]:
        """The operator's other arguments (``extra`` stands in for a cell that :meth:`only` leaves
        out: the constructor may need it)."""
        given = {cell.param for cell in self.cells} | set(self.drops)
        merged = BASES[self.op](site) | (self.extra(site) if self.extra else {})
        return {k: v for k, v in merged.items() if k not in given}

    def only(self, cell: Cell) -> Bundle:
        return Bundle(self.op, cell.param, (cell,), self.drops, self.extra, self.no_paths, self.no_forms)


def _creds(s: Site) -> list[dict[str, Any]]:
    """Inline credentials: the secrets the Rendered tab must never show."""
    return [
        {"provider": "azure-openai", "region": "eastus", "models": ["gpt-4o"],
         "openAIKey": s.secret("openai"), "openAIEndpoint": "https://matrix.openai.azure.com"},
        {"provider": "gcp", "gcpKey": {"type": "service_account", "privateKey": s.secret("gcp")}},
    ]  # fmt: skip


def _assistant(v: Any, s: Site) -> dict[str, Any]:
    model = {
        "provider": "openai",
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}],
    }
    return {"name": "matrix", "firstMessage": v, "model": model, "credentials": _creds(s)}


BASES: Final[dict[str, Callable[[Site], dict[str, Any]]]] = {
    "PlaceCallOperator": lambda s: {
        "assistant_id": s.ids["assistant"], "phone_number_id": s.ids["phone"], "customer": s.number,
    },
    "CallStatusSensor": lambda s: {"call_id": s.ids["call"], "poke_interval": 0.2, "timeout": 30},
    "RunStructuredOutputOperator": lambda s: {
        "structured_output": {"name": f"o{s.n}", "schema": {"type": "boolean"}}, "call_ids": [s.ids["call"]],
        "poll_interval": 0.1, "results_timeout": 10, "fail_on_missing": False,
    },
    "ExportCallsOperator": lambda s: {
        "path": f"{s.tmp}/export-{s.n}", "updated_after": f"{DS}T00:00:00Z",
        "updated_before": "2026-01-02T00:00:00Z",
    },
    "LoadCallsOperator": lambda s: {
        "source": f"{s.tmp}/calls.jsonl", "conn_id": "matrix_db", "table": f"calls_{s.n}",
    },
    "RunCampaignOperator": lambda s: {
        "assistant_id": s.ids["assistant"], "phone_number_id": s.ids["phone"], "customers": [s.number],
        "wait_for_completion": False,
    },
    "CampaignStatusSensor": lambda s: {"campaign_id": s.ids["campaign"], "poke_interval": 0.2, "timeout": 30},
    "LoadCampaignContactsOperator": lambda s: {
        "campaign_id": s.ids["campaign"], "conn_id": "matrix_db", "table": f"contacts_{s.n}",
    },
}  # fmt: skip

#: What a mapped task whose cell is not mapped maps over: an argument that is not templated (the
#: ``partial()`` of every operator already holds BaseOperator's own, such as ``owner``).
MAP_OVER: Final = {
    "ExportCallsOperator": "recording_concurrency=[4]",
    "LoadCallsOperator": "create_table=[True]",
    "LoadCampaignContactsOperator": "create_table=[True]",
}
_P, _C, _S = "PlaceCallOperator", "RunCampaignOperator", "RunStructuredOutputOperator"
_NO_ASSISTANT = ("assistant_id",)
_VV = ("assistantOverrides", "variableValues")
BUNDLES: Final[tuple[Bundle, ...]] = (
    Bundle(_P, "text", (
        Cell("variable_values", lambda v, s: {"v": v}, (*_VV, "v")),
        Cell("metadata", lambda v, s: {"m": v}, ("assistantOverrides", "metadata", "m")),
        Cell("name", at=("name",)),
        Cell("customer", lambda v, s: {"number": s.number, "name": v}, ("customer", "name")),
        Cell("assistant_overrides", lambda v, s: {"firstMessage": v}, ("assistantOverrides", "firstMessage")),
        Cell("payload", lambda v, s: {"assistantOverrides": {"variableValues": {"p": v}}}, (*_VV, "p")),
        Cell("phone_number", lambda v, s: {"twilioPhoneNumber": "+15550100100", "twilioAccountSid": "AC123",
                                           "twilioAuthToken": "matrix-token", "name": v}, ("phoneNumber", "name")),
    ), drops=("phone_number_id",)),
    Bundle(_P, "inline", (
        Cell("customers", lambda v, s: [{"number": s.number, "name": v}], ("customers", 0, "name")),
        Cell("assistant", _assistant, ("assistant", "firstMessage")),
    ), drops=("customer", *_NO_ASSISTANT)),
    Bundle(_P, "squad", (
        Cell("squad", lambda v, s: {"members": [{"assistantId": s.ids["assistant"],
                                                  "assistantOverrides": {"firstMessage": v}}]},
             ("squad", "members", 0, "assistantOverrides", "firstMessage")),
        Cell("squad_overrides", lambda v, s: {"variableValues": {"v": v}}, ("squadOverrides", "variableValues", "v")),
    ), drops=_NO_ASSISTANT),
    # Not free text at Vapi: ids, dates, numbers, connections, tables, files. The Rendered tab
    # shows what each became; the task may fail, clearly (these parameters contradict each other).
    Bundle(_P, "ids", (
        Cell("assistant_id"), Cell("assistant_version"), Cell("squad_id"), Cell("workflow_id"),
        Cell("workflow", lambda v, s: {"name": v, "nodes": []}),
        Cell("workflow_overrides", lambda v, s: {"variableValues": {"v": v}}),
        Cell("phone_number_id"), Cell("customer_id"), Cell("schedule_plan", lambda v, s: {"earliestAt": v}),
        Cell("transport", lambda v, s: {"provider": v}), Cell("vapi_conn_id"), Cell("dedupe_key"),
    )),
    # A sensor's id goes into the path it reads (GET /call/{id}): alone, so that a connection
    # that cannot be found never stops the request.
    Bundle("CallStatusSensor", "ids", (Cell("call_id"),)),
    Bundle("CallStatusSensor", "conn", (Cell("vapi_conn_id"),)),
    Bundle(_S, "text", (
        Cell("structured_output", lambda v, s: {"name": f"o{s.n}", "schema": {"type": "boolean"}, "description": v},
             ("structuredOutput", "description")),
    )),
    # The constructor wants exactly one of structured_output_id and structured_output, and exactly
    # one of call_ids and created_after.
    Bundle(_S, "ids", (Cell("structured_output_id"), Cell("call_ids")), drops=("structured_output",),
           extra=lambda s: {"structured_output_id": "00000000-0000-4000-8000-000000000000"}),
    Bundle(_S, "window", (Cell("created_after"), Cell("created_before"), Cell("assistant_id"), Cell("vapi_conn_id")),
           drops=("call_ids",), extra=lambda s: {"created_after": f"{DS}T00:00:00Z", "created_before": f"{DS}T01:00:00Z"}),
    # Paths are data too, but kept inside the test's own folder (a bare hostile text would be a
    # path relative to the working directory).
    Bundle("ExportCallsOperator", "ids", (
        Cell("path", lambda v, s: f"{s.tmp}/export-{s.n}-{v}"), Cell("updated_after"), Cell("updated_before"),
        Cell("assistant_id"), Cell("phone_number_id"), Cell("campaign_id"), Cell("storage_conn_id"),
    )),
    # The constructor refuses a call_type that is not one of Vapi's types unless it holds "{{" (at
    # parse time, or when a mapped task is unmapped: before Airflow stores anything). So neither an
    # XComArg nor text without "{{" can reach the Rendered tab.
    Bundle("ExportCallsOperator", "call_type", (Cell("call_type"),), no_paths=frozenset({"xcomarg"}),
           no_forms=frozenset({"tag", "bad", "loop", "cut"})),
    Bundle("LoadCallsOperator", "ids", (
        Cell("source", lambda v, s: f"{s.tmp}/calls-{v}.jsonl"), Cell("conn_id"),
        Cell("table"),  # a SQL name: hostile text must be refused clearly
        Cell("storage_conn_id"),
    )),
    Bundle(_C, "text", (
        Cell("name", at=("name",)),
        Cell("customers", lambda v, s: [{"number": s.number, "name": v}], ("customers", 0, "name")),
        Cell("assistant_overrides", lambda v, s: {"firstMessage": v, "credentials": _creds(s)},
             ("assistantOverrides", "firstMessage")),
        Cell("variable_values", lambda v, s: {"v": v}, (*_VV, "v")),
        Cell("payload", lambda v, s: {"assistantOverrides": {"variableValues": {"p": v}}}, (*_VV, "p")),
    )),
    Bundle(_C, "ids", (
        Cell("assistant_id"), Cell("squad_id"), Cell("workflow_id"), Cell("phone_number_id"),
        Cell("schedule_plan", lambda v, s: {"earliestAt": v}), Cell("max_concurrency"),
        Cell("customers_path", lambda v, s: f"{s.tmp}/customers-{v}.csv"), Cell("storage_conn_id"),
        Cell("vapi_conn_id"),
    ), drops=("customers",)),
    Bundle("CampaignStatusSensor", "ids", (Cell("campaign_id"),)),
    Bundle("CampaignStatusSensor", "conn", (Cell("vapi_conn_id"),)),
    Bundle("LoadCampaignContactsOperator", "ids", (
        Cell("campaign_id"), Cell("conn_id"), Cell("table"), Cell("vapi_conn_id"),
    )),
)  # fmt: skip
#: The requests that carry a text cell, and how to tell which task sent one.
ROUTES: Final = {_P: ("POST", "/call"), _C: ("POST", "/v2/campaign"), _S: ("POST", "/structured-output/run")}


@dataclass(frozen=True)
class Task:
    """One task of a run: a bundle, how its values arrive, and which form they have."""

    bundle: Bundle
    path: str
    form: str
    n: int

    @property
    def task_id(self) -> str:
        path = self.path.replace(MAPPED, "_m")
        return f"t{self.n}_{self.bundle.op[:-8].lower()}_{self.bundle.name}_{path}_{self.form}"

    @property
    def mapped(self) -> bool:
        return self.path in MAPPED_PATHS or self.path.endswith(MAPPED)

    @property
    def key(self) -> tuple[str, int]:
        """Its task instance: (task id, map index)."""
        return self.task_id, 0 if self.mapped else -1

    def label(self, cell: Cell | None = None) -> str:
        params = cell.param if cell else ",".join(c.param for c in self.bundle.cells)
        return f"{self.bundle.op}.{params} <- {self.path.replace(MAPPED, ' (mapped)')} [{self.form}]"

    def literal(self) -> str | None:
        """The text the DAG file writes (``None``: an upstream task gives the value)."""
        if self.path in RESOLVED_PATHS:
            return None
        if self.path in AUTHOR_PATHS:
            return BAD_TEMPLATE if self.form == "bad" else AUTHOR_FORMS[self.form][0]
        return EXPRESSIONS[self.path.removesuffix(MAPPED)].format(k=self.form)

    def expected(self) -> str:
        """The text each parameter must hold once rendered."""
        return AUTHOR_FORMS[self.form][1] if self.path in AUTHOR_PATHS else DATA_FORMS[self.form]


def plan(
    bundles: Sequence[Bundle],
    slots: Sequence[Sequence[str]],
    forms: Sequence[str],
    order: Sequence[int],
    shift: int,
) -> list[Task]:
    """A task per bundle and slot (a slot: the arrival paths it may take, such as the unmapped
    ones), bundles in ``order``. Whatever ``order`` and ``shift``, every bundle is in, each
    slot's paths and the forms are dealt round the bundles in turn, and the pairing of bundle,
    path and form moves with them."""
    tasks: list[Task] = []
    author = any(p in AUTHOR_PATHS for slot in slots for p in slot)
    for rank, index in enumerate(order):
        bundle = bundles[index]
        # The author's {{name}} is Vapi's placeholder: only where text reaches Vapi.
        usable = [f for f in forms if f not in bundle.no_forms and (f != "vapi" or bundle.text or not author)]
        for j, slot in enumerate(slots):
            open_paths = [p for p in slot if p.removesuffix(MAPPED) not in bundle.no_paths]
            if open_paths:
                path = open_paths[(rank + j + shift) % len(open_paths)]
                form = usable[(rank * len(slots) + j + shift) % len(usable)]
                tasks.append(Task(bundle, path, form, len(tasks)))
    return tasks


def dig(body: Any, at: Sequence[str | int]) -> Any:
    for step in at:
        try:
            body = body[step]
        except (KeyError, IndexError, TypeError):
            return None
    return body


_SLOT: Final = "\x00slot\x00"


@dataclass
class DagSource:
    """The DAG file of one run, built task by task."""

    dag_id: str
    out_dir: str
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    up: dict[str, Any] = field(default_factory=dict)  # one XCom each (``multiple_outputs``)
    rows: dict[str, Any] = field(default_factory=dict)  # one XCom: what mapped tasks map over
    lines: list[str] = field(default_factory=list)

    def _xcomarg(self, task: Task, cell: Cell, site: Site) -> str:
        """The parameter's source with the text as an ``XComArg`` (nested where the value nests
        it; the whole value when the text sits inside a longer string, as in a path)."""
        written, slot = repr(cell.wrap(_SLOT, site)), repr(_SLOT)
        if slot in written:
            return written.replace(slot, f"up[{f'f_{task.form}'!r}]")
        key = f"{task.task_id}__{cell.param}"
        self.up[key] = cell.wrap(DATA_FORMS[task.form], site)
        return f"up[{key!r}]"

    def add(self, task: Task, site: Site, **extra: Any) -> None:
        bundle, tid, literal = task.bundle, task.task_id, task.literal()
        kw = self.kwargs[tid] = bundle.kwargs(site) | extra
        if literal is not None:
            kw.update({cell.param: cell.wrap(literal, site) for cell in bundle.cells})
        else:
            data = {cell.param: cell.wrap(DATA_FORMS[task.form], site) for cell in bundle.cells}
        start = f"{bundle.op}.partial(task_id={tid!r}, **KW[{tid!r}])"
        if task.path == "xcomarg":
            given = ", ".join(f"{c.param}={self._xcomarg(task, c, site)}" for c in bundle.cells)
            line = f"{bundle.op}(task_id={tid!r}, {given}, **KW[{tid!r}])"
        elif task.path == "expand":
            self.rows.update({f"{tid}__{param}": value for param, value in data.items()})
            given = ", ".join(f"{p}=one.map(lambda d: d[{f'{tid}__{p}'!r}])" for p in data)
            line = f"{start}.expand({given})"
        elif task.path == "expand_kwargs":
            self.rows[tid] = data
            line = f"{start}.expand_kwargs(one.map(lambda d: d[{tid!r}]))"
        elif task.mapped:
            line = f"{start}.expand({MAP_OVER.get(bundle.op, 'deferrable=[False]')})"
        else:
            line = f"{bundle.op}(task_id={tid!r}, **KW[{tid!r}])"
        self.lines.append(f"up >> {line}" if task.path.startswith("xcom_pull") else line)

    def text(self, params: Mapping[str, Any]) -> str:
        body = "\n".join(f"    {line}" for line in self.lines)
        wanted = {"up": "up[" in body or "up >>" in body, "one": "one.map" in body}
        upstream = {
            "up": "@task(multiple_outputs=True)\ndef up():\n    return UP\n\nup = up()",
            "one": "@task\ndef one():\n    return [ROWS]\n\none = one()",
        }
        tasks = "\n".join(code for name, code in upstream.items() if wanted[name])
        body = textwrap.indent(tasks, "    ") + "\n" + body
        return f'''
import json
from pathlib import Path
from airflow.providers.common.compat.sdk import task
from airflow_provider_vapi.operators import (
    ExportCallsOperator, LoadCallsOperator, LoadCampaignContactsOperator, RunCampaignOperator,
)
from airflow_provider_vapi.sensors import CampaignStatusSensor

KW = {self.kwargs!r}
UP = {self.up!r}
ROWS = {self.rows!r}


def _record(context):
    """What a failed (or retried) try raised, for the test to read."""
    exc, ti = context.get("exception"), context["ti"]
    entry = {{"type": type(exc).__name__, "module": type(exc).__module__, "message": str(exc),
              "try": ti.try_number}}
    Path({self.out_dir!r}, f"{{ti.task_id}}.{{ti.map_index}}.json").write_text(json.dumps(entry))


with DAG({self.dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, params={dict(params)!r},
         default_args={{"retry_delay": timedelta(0), "on_failure_callback": _record,
                       "on_retry_callback": _record}}) as dag:
{body}
'''


def failures(out_dir: str) -> dict[tuple[str, int], dict[str, Any]]:
    """``{(task id, map index): what its last failed try raised}``."""
    import json
    from pathlib import Path

    found = {}
    for path in Path(out_dir).glob("*.json"):
        task_id, index = path.stem.rsplit(".", 1)
        found[task_id, int(index)] = json.loads(path.read_text())
    return found
