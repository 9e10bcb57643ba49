"""Data is never code, secrets are never stored: a property test over the rendering matrix.

Every templated parameter of every public operator (the cells of tests/rendering_matrix.py) x every
way a value arrives (a literal in the DAG, ``partial()``, an ``XComArg``, ``expand``,
``expand_kwargs``, conf, params, a Variable, ``ti.xcom_pull``) x every template form x mapped or
not. Hypothesis deals the pairing; each test is one real ``dag.test()`` against the emulator, a task
per bundle of cells and path, and asserts what reached Vapi (the emulator's request log) and what
Airflow stored in the Rendered tab:

* values Airflow resolved are data: they arrive byte for byte, never rendered;
* what the author wrote in the DAG file renders exactly once, in every form, mapped or not, and
  Vapi's ``{{name}}`` passes untouched;
* a bad author template fails the task at once (``AirflowFailException``, no retry), naming the
  task and saying nothing was sent to Vapi; nothing reaches the emulator;
* no secret the author gave (inline credentials) shows in the Rendered tab, mapped or not;
* the API key and the Variable's canary never appear in any request, nor in any task's error.

With ``VAPI_FUZZ_PROFILE=ci`` each test runs Hypothesis's simplest example only: a fixed plan in
which every bundle meets every slot (literal and ``partial``; ``XComArg``, ``expand`` and
``expand_kwargs``; an unmapped and a mapped expression), with the paths and forms dealt round the
bundles. Otherwise each run deals them afresh. Shrinking is off (an example is a whole DAG run); a
failing example is replayed from the observations already made, not run again.

Not covered: literal lists given to ``expand()``/``expand_kwargs()`` (written in the DAG file but
mapped input: the contract does not say which they are), task-group mapping, ``template_ext`` files,
``render_template_as_native_obj`` DAGs, and non-text values read by an expression (lists, dicts).
Run on Airflow 3.3 only (the Airflow 2.11 venv was not built).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from tests.dag_runner import load_dag, reset_log_masker
from tests.rendering_matrix import (
    AUTHOR_FORMS,
    AUTHOR_PATHS,
    BAD_TEMPLATE,
    BUNDLES,
    DATA_FORMS,
    DS,
    EXPRESSION_PATHS,
    MAPPED,
    RESOLVED_PATHS,
    ROUTES,
    Bundle,
    Cell,
    DagSource,
    Site,
    Task,
    dig,
    failures,
    plan,
)

pytestmark = pytest.mark.usefixtures("airflow_db", "vapi_conn")


@pytest.fixture(autouse=True)
def _fresh_masker() -> None:
    """What the Rendered tab shows is judged against this test's own secrets only."""
    reset_log_masker()


ONE_RUN = settings(
    max_examples=1,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ORDER = st.permutations(range(len(BUNDLES)))
SHIFT = st.integers(0, 83)
#: ``VAPI_FUZZ_PROFILE=ci``: the simplest example only, which Hypothesis always tries first.
FIXED = bool(getattr(settings.default, "derandomize", False))


def _dealt(order: Sequence[int], shift: int) -> None:
    """Outside CI, deal afresh: skip the simplest example (the one CI runs)."""
    assume(FIXED or list(order) != sorted(order) or shift != 0)


_CAMPAIGN_TAG = re.compile(r" \[af:[0-9a-f]{12}(\.\d+)?\]$")


@dataclass
class Observed:
    """What one ``dag.test()`` left behind."""

    states: dict[tuple[str, int], str]
    tries: dict[tuple[str, int], int]
    rendered: dict[tuple[str, int], dict[str, Any]]
    errors: dict[tuple[str, int], dict[str, Any]]
    requests: list[dict[str, Any]]


@dataclass(repr=False)
class Matrix:
    """One test's emulator, secrets and folder, and the runs it made (by plan)."""

    emu: Any
    tmp: Path
    canary: str
    ids: dict[str, str]
    runs: dict[Any, Observed] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Matrix(run={self.ids['run']!r}, tmp={str(self.tmp)!r})"

    def site(self, n: int) -> Site:
        return Site(n, self.ids, str(self.tmp))

    @property
    def secrets(self) -> tuple[str, str]:
        return self.emu.api_key, self.canary


@pytest.fixture
def matrix(vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Matrix:
    emu, canary = vapi_emulator, f"canary-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("AIRFLOW_VAR_CANARY", canary)
    for form, text in DATA_FORMS.items():  # what ``{{ var.value.f_<form> }}`` reads
        monkeypatch.setenv(f"AIRFLOW_VAR_F_{form.upper()}", text)
    db = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")})
    monkeypatch.setenv("AIRFLOW_CONN_MATRIX_DB", db)
    (tmp_path / "calls.jsonl").write_text("")
    call = emu.inject_inbound_call("+15550107777", ended=True)
    campaign = emu.create_campaign(["+15550108888"])
    emu.wait_for_campaign(campaign["id"], lambda c: c.get("status") == "ended")
    ids = {"assistant": emu.assistant_id, "phone": emu.phone_number_id, "call": call["id"],
           "campaign": campaign["id"], "run": uuid.uuid4().hex[:8]}  # fmt: skip
    return Matrix(emu, tmp_path, canary, ids)


def _observe(m: Matrix, key: Any, source: DagSource, conf: dict[str, Any] | None = None) -> Observed:
    """Run the DAG once per plan (Hypothesis replays a failing example: from these observations)."""
    if key in m.runs:
        return m.runs[key]
    from datetime import UTC, datetime

    m.emu.clear_requests()
    dag = load_dag(source.dag_id, source.text({f"f_{k}": v for k, v in DATA_FORMS.items()}))
    when = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        run = dag.test(logical_date=when, run_conf=conf)
    except TypeError:  # Airflow 2
        run = dag.test(execution_date=when, run_conf=conf)
    tis = run.get_task_instances()
    m.runs[key] = Observed(
        states={(ti.task_id, ti.map_index): str(ti.state) for ti in tis},
        tries={(ti.task_id, ti.map_index): ti.try_number for ti in tis},
        rendered=_rendered(run),
        errors=failures(source.out_dir),
        requests=m.emu.requests(),
    )
    return m.runs[key]


def _rendered(run: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """The Rendered tab of every task instance of the run."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Rtif).where(Rtif.dag_id == run.dag_id, Rtif.run_id == run.run_id))
        return {(r.task_id, r.map_index): dict(r.rendered_fields) for r in rows}


def _normal(value: Any) -> Any:
    """``value`` as JSON holds it, without its secrets (masked in the Rendered tab: checked apart)."""

    def drop(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: drop(v) for k, v in item.items() if k not in ("credentials", "twilioAuthToken")}
        return [drop(v) for v in item] if isinstance(item, list) else item

    return drop(json.loads(json.dumps(value, default=str)))


def _sent(task: Task, cell: Cell, site: Site, requests: Sequence[dict[str, Any]]) -> list[Any]:
    """The text each request of this task carried at the cell's place."""
    method, path = ROUTES[task.bundle.op]
    found = []
    for request in requests:
        body = request.get("body")
        if request["method"] != method or request["path"] != path or not isinstance(body, dict):
            continue
        numbers = [dig(c, ("number",)) for c in [body.get("customer"), *(body.get("customers") or [])]]
        if site.number in numbers or dig(body, ("structuredOutput", "name")) == f"o{site.n}":
            value = dig(body, cell.at or ())
            found.append(
                _CAMPAIGN_TAG.sub("", value) if cell.at == ("name",) and isinstance(value, str) else value
            )
    return found


def _problems(m: Matrix, task: Task, seen: Observed) -> Iterator[str]:
    """What is wrong with one task of the run: its Rendered tab, its error, what reached Vapi."""
    site = m.site(task.n)
    state, error, rendered = seen.states.get(task.key), seen.errors.get(task.key), seen.rendered.get(task.key)
    told = f" ({error['type']}: {error['message'][:200]})" if error else ""
    if error and (error["module"].startswith("jinja2") or any(s in error["message"] for s in m.secrets)):
        yield f"{task.label()}: a raw error, or one that shows a secret{told}"
    if rendered is None:
        yield f"{task.label()}: nothing in the Rendered tab, task {state}{told}"
    for cell in task.bundle.cells:
        wanted = _normal(cell.wrap(task.expected(), site))
        if rendered is not None and _normal(rendered.get(cell.param)) != wanted:
            yield f"{task.label(cell)}: the Rendered tab shows {rendered.get(cell.param)!r}, not {wanted!r}"
    if not task.bundle.text:
        return
    if state != "success":
        yield f"{task.label()}: task {state}{told}"
    for cell in task.bundle.cells:
        sent = _sent(task, cell, site, seen.requests)
        if state == "success" and sent != [task.expected()]:
            yield f"{task.label(cell)}: Vapi got {sent!r}, not [{task.expected()!r}]"


def _leaks(m: Matrix, seen: Observed) -> list[str]:
    """The API key or the canary in any request: its path, query or body, or (the log redacts a
    body's secrets, keeping their fingerprints) sent as a secret."""
    from airflow_provider_vapi.emulator.redaction import fingerprint

    text = json.dumps(seen.requests)
    named = {"the API key": m.emu.api_key, "the Variable's canary": m.canary}
    return [
        f"{name} reached Vapi"
        for name, secret in named.items()
        if secret in text or fingerprint(secret) in text
    ]


def _check(m: Matrix, tasks: Sequence[Task], seen: Observed, extra: Sequence[str] = ()) -> None:
    problems = [p for task in tasks for p in _problems(m, task, seen)] + _leaks(m, seen) + list(extra)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def _run(
    m: Matrix, family: str, tasks: Sequence[Task], conf: dict[str, Any] | None = None, **extra: Any
) -> Observed:
    out = m.tmp / f"{family}-{len(m.runs)}"
    out.mkdir(exist_ok=True)
    source = DagSource(f"matrix_{family}_{m.ids['run']}_{len(m.runs)}", str(out))
    for task in tasks:
        source.add(task, m.site(task.n), **extra)
    source.up.update({f"f_{k}": v for k, v in DATA_FORMS.items()})  # ``ti.xcom_pull(key='f_<form>')``
    key = (family, tuple((t.task_id, t.path, t.form) for t in tasks))
    return _observe(m, key, source, conf)


def _secrets_shown(m: Matrix, tasks: Sequence[Task], seen: Observed) -> list[str]:
    """Secrets the author wrote (inline credentials) that the Rendered tab shows."""
    shown = []
    for task in tasks:
        rendered, site = json.dumps(seen.rendered.get(task.key)), m.site(task.n)
        shown += [f"{task.label()}: the Rendered tab shows the {kind} key" for kind in ("openai", "gcp")
                  if site.secret(kind) in rendered]  # fmt: skip
    return shown


@ONE_RUN
@given(order=ORDER, shift=SHIFT)
def test_what_the_author_wrote_renders_exactly_once(matrix: Matrix, order: list[int], shift: int) -> None:
    """Literal arguments and ``partial()`` ones: every form renders once, ``{{name}}`` passes, and
    no inline credential shows in the Rendered tab, mapped or not."""
    _dealt(order, shift)
    tasks = plan(BUNDLES, [[p] for p in AUTHOR_PATHS], list(AUTHOR_FORMS), order, shift)
    seen = _run(matrix, "author", tasks)
    _check(matrix, tasks, seen, _secrets_shown(matrix, tasks, seen))


@ONE_RUN
@given(order=ORDER, shift=SHIFT)
def test_resolved_values_arrive_byte_for_byte(matrix: Matrix, order: list[int], shift: int) -> None:
    """An ``XComArg``, ``expand`` and ``expand_kwargs`` values: data, never rendered."""
    _dealt(order, shift)
    tasks = plan(BUNDLES, [[p] for p in RESOLVED_PATHS], list(DATA_FORMS), order, shift)
    _check(matrix, tasks, _run(matrix, "resolved", tasks))


@ONE_RUN
@given(order=ORDER, shift=SHIFT)
def test_what_an_author_expression_reads_is_data(matrix: Matrix, order: list[int], shift: int) -> None:
    """conf, params, a Variable, ``ti.xcom_pull``: the author's expression renders once, and what
    it read is data, in a task mapped or not."""
    _dealt(order, shift)
    slots = [EXPRESSION_PATHS, [p + MAPPED for p in EXPRESSION_PATHS]]
    tasks = plan(BUNDLES, slots, list(DATA_FORMS), order, shift)
    conf = {f"f_{k}": v for k, v in DATA_FORMS.items()}
    _check(matrix, tasks, _run(matrix, "expr", tasks, conf))


def _bad_tasks(order: Sequence[int], pick: int) -> list[Task]:
    """For each operator, one parameter (the ``pick``-th of its first bundle in ``order`` that can
    hold a bad template), literal and given to ``partial()``."""
    chosen: dict[str, Bundle] = {}
    for index in order:
        bundle = BUNDLES[index]
        if "bad" not in bundle.no_forms and bundle.op not in chosen:
            chosen[bundle.op] = bundle.only(bundle.cells[pick % len(bundle.cells)])
    pairs = [(bundle, path) for bundle in chosen.values() for path in AUTHOR_PATHS]
    return [Task(bundle, path, "bad", n) for n, (bundle, path) in enumerate(pairs)]


@ONE_RUN
@given(order=ORDER, pick=st.integers(0, 10))
def test_a_bad_author_template_fails_at_once_and_sends_nothing(
    matrix: Matrix, order: list[int], pick: int
) -> None:
    """A cut-off tag in one parameter of each operator, literal and given to ``partial()``, with
    ``retries=2``: failed at the first try, naming the task; no request at all."""
    _dealt(order, pick)
    tasks = _bad_tasks(order, pick)
    seen = _run(matrix, "bad", tasks, retries=2)
    problems = []
    for task in tasks:
        error = seen.errors.get(task.key) or {"type": "none", "message": ""}
        got = (seen.states.get(task.key), seen.tries.get(task.key), error["type"])
        if got != ("failed", 1, "AirflowFailException"):
            problems.append(f"{task.label()}: (state, try, error) {got} ({error['message'][:160]})")
        elif task.task_id not in error["message"] or "nothing was sent to Vapi" not in error["message"]:
            problems.append(f"{task.label()}: the message does not name the task or say nothing was sent")
    problems += [f"{r['method']} {r['path']} reached the emulator" for r in seen.requests]
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_every_task_a_plan_can_hold_is_built() -> None:
    """Each bundle, and each of its cells alone (a bad template's task), in every form it takes,
    gives its operator's constructor what the constructor checks."""
    from airflow_provider_vapi import operators, sensors

    site = Site(0, {"assistant": "a", "phone": "p", "call": "c", "campaign": "k", "run": "r"}, "/nonexistent")
    texts = {form: text for form, (text, _) in AUTHOR_FORMS.items()} | {"bad": BAD_TEMPLATE}
    for bundle in BUNDLES:
        cls = getattr(operators, bundle.op, None) or getattr(sensors, bundle.op)
        for single in (bundle, *(bundle.only(cell) for cell in bundle.cells)):
            for form, text in texts.items():
                if form not in single.no_forms:
                    kwargs = single.kwargs(site) | {c.param: c.wrap(text, site) for c in single.cells}
                    cls(task_id=f"built_{bundle.name}_{form}", **kwargs)


def test_the_plan_covers_the_matrix() -> None:
    """Whatever Hypothesis draws, a run holds every bundle, every path and every form."""
    for order, shift in ((list(range(len(BUNDLES))), 0), (list(reversed(range(len(BUNDLES)))), 5)):
        tasks = plan(BUNDLES, [[p] for p in RESOLVED_PATHS], list(DATA_FORMS), order, shift)
        assert {t.bundle for t in tasks} == set(BUNDLES)
        assert {t.path for t in tasks} == set(RESOLVED_PATHS) and {t.form for t in tasks} == set(DATA_FORMS)
        assert len({t.task_id for t in tasks}) == len(tasks)
    assert AUTHOR_FORMS["ds"][1] == DS


def test_every_templated_parameter_of_every_public_operator_has_a_cell() -> None:
    """A templated parameter added to an operator joins the matrix, or this fails naming it."""
    from airflow_provider_vapi import operators, sensors

    for op in sorted({bundle.op for bundle in BUNDLES}):
        cls = getattr(operators, op, None) or getattr(sensors, op)
        cells = {cell.param for bundle in BUNDLES if bundle.op == op for cell in bundle.cells}
        assert set(cls.template_fields) <= cells, f"{op}: no cell for {set(cls.template_fields) - cells}"
    assert {b.op for b in BUNDLES} >= {*operators.__all__, "CallStatusSensor", "CampaignStatusSensor"}
