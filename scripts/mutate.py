"""``make mutate``: mutation testing of the modules that carry the retry-safety promises (issue 23).

Runs mutmut over the person key (``idempotency/persons.py``), the rest of ``idempotency/`` (keys,
placing, retries, the create that never dials twice, campaigns), the one clock-skew margin
(``skew.py``) and the export window rule (``call_export.py``: ``settles_at``, ``check_settled``,
``ExportCallsOperator.window`` and ``wait_until_settled``) against the fast tests that exercise
them, then prints the score per module and every mutant that survived.

The configuration lives here, not in ``pyproject.toml`` (mutmut reads only ``[tool.mutmut]`` or
``setup.cfg``; this script hands it over before mutmut loads it). The work directory is
``mutants/`` (git-ignored). Not in CI: a full run takes tens of minutes.

    python scripts/mutate.py                 # the whole set (make mutate)
    python scripts/mutate.py --score         # only print the score of the last run
    python scripts/mutate.py 'airflow_provider_vapi.wire.skew.*'   # only these mutants (fnmatch)
    python scripts/mutate.py --resume [PATTERN ...]   # those the last run did not kill
    python scripts/mutate.py --max-children 1         # one worker (make mutate MAX_CHILDREN=1)

A change to the test selection (a test added to or removed from the fast set) makes mutmut reset
every result: resume only with the same tests.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The mutants that count (mutmut's names, fnmatch): every function of these modules, and the
#: functions of landing/export.py that decide the export window.
PROMISES = (
    "airflow_provider_vapi.idempotency.*",
    "airflow_provider_vapi.placing.place.*",
    "airflow_provider_vapi.placing.retry.*",
    "airflow_provider_vapi.campaigns.once.*",
    "airflow_provider_vapi.campaigns.plan.*",
    "airflow_provider_vapi.wire.skew.*",
    "airflow_provider_vapi.landing.export.x_settles_at*",
    "airflow_provider_vapi.landing.export.x_check_settled*",
    "airflow_provider_vapi.landing.export.xǁExportCallsOperatorǁwindow*",
    "airflow_provider_vapi.landing.export.xǁExportCallsOperatorǁwait_until_settled*",
)

#: The tests run against each mutant: pure ones, and those against the in-process emulator that
#: call the hook or an operator's method directly (a few seconds at most each).
TEST_FILES = (
    "tests/test_guarantee_edges.py",
    "tests/test_persons.py",
    "tests/test_idempotency.py",
    "tests/test_hook.py",
    "tests/test_never_twice.py",
    "tests/test_one_person_one_call.py",
    "tests/test_campaigns.py",
    "tests/test_export_window.py",
    "tests/test_export.py",
)
#: A test of those files that runs a DAG (``dag.test()``, directly or through one of these helpers,
#: or a helper of its own module that does) is left out: tens of seconds each, and the functions
#: they reach are driven directly, with a small task context, in test_guarantee_edges.py.
DAG_RUNNERS = frozenset({"run_dag", "run_again"})
#: Left out too: slow, and about nothing the mutated functions decide (the big listings are
#: paging's); and 100 concurrent creates on a 0.3 s client timeout, which time out spuriously on a
#: busy machine (a false kill, or a failed clean run): test_guarantee_edges.py has a single-call one.
DESELECT = (
    "tests/test_hook.py::test_list_pages_past_a_thousand_calls",
    "tests/test_export.py::test_a_window_of_2500_calls_is_exported_whole_once_and_identically_twice",
    "tests/test_never_twice.py::test_a_create_slower_than_the_timeout_is_waited_for_not_sent_again",
)


def _runs_a_dag(node: ast.AST, runners: set[str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name) and func.id in runners:
                return True
            if isinstance(func, ast.Attribute) and (func.attr == "test" or func.attr in runners):
                return True
    return False


def fast_tests() -> list[str]:
    """The node ids of the tests of :data:`TEST_FILES` that run no DAG (and are not deselected)."""
    selected: list[str] = []
    for name in TEST_FILES:
        tree = ast.parse((ROOT / name).read_text())
        functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
        runners = set(DAG_RUNNERS)
        while grown := {n for n, f in functions.items() if n not in runners and _runs_a_dag(f, runners)}:
            runners |= grown
        selected += [
            node
            for n in functions
            if n.startswith("test_") and n not in runners and (node := f"{name}::{n}") not in DESELECT
        ]
    return selected


CONFIG: dict[str, Any] = {
    "source_paths": ["airflow_provider_vapi"],
    "only_mutate": [
        "airflow_provider_vapi/idempotency/*",
        "airflow_provider_vapi/placing/place.py",
        "airflow_provider_vapi/placing/retry.py",
        "airflow_provider_vapi/campaigns/once.py",
        "airflow_provider_vapi/campaigns/plan.py",
        "airflow_provider_vapi/wire/skew.py",
        "airflow_provider_vapi/landing/export.py",
    ],
    # Wording is not a promise: what a log line or an exception's message says is not mutated
    # (whether, when and which exception is raised is).
    "do_not_mutate_patterns": [
        r"\.log\.(debug|info|warning|error|exception)\(",
        r"raise \w+(Error|Exception)\(",
    ],
    "pytest_add_cli_args_test_selection": [],  # fast_tests(), set by _configure()
    # A mutant that makes a wait endless is killed by the timeout, not waited for 300 s.
    "pytest_add_cli_args": ["-p", "no:cacheprovider", "--timeout=150", "-W", "ignore"],
    "use_git_change_detection": False,
    "timeout_multiplier": 10.0,
}


def _configure() -> None:
    """Hand CONFIG to mutmut (before anything of it calls ``config()``)."""
    import mutmut.configuration as configuration

    CONFIG["pytest_add_cli_args_test_selection"] = fast_tests()

    def reader() -> Any:
        return lambda key, default: CONFIG.get(key, default)

    configuration._config_reader = reader  # type: ignore[assignment]
    configuration.reset_config()
    _fastest_first()


def _fastest_first() -> None:
    """Run a mutant's tests fastest first (mutmut hands pytest a set, in no order): with ``-x`` a
    mutant is over at its first failing test, and most are killed by a pure test of a few ms,
    not after a 15 s emulator test that happened to come first."""
    from mutmut.runners.harness import PytestRunner
    from mutmut.state import state

    regular = PytestRunner._pytest_args_regular_run

    def ordered(self: PytestRunner, tests: Any) -> list[str]:
        durations = state().duration_by_test
        return regular(self, sorted(tests, key=lambda t: (durations.get(t, 0.0), t)) if tests else tests)

    PytestRunner._pytest_args_regular_run = ordered  # type: ignore[method-assign]


def _counted(name: str) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in PROMISES)


def _results() -> dict[str, int | None]:
    """The last run's exit code of every counted mutant (``None``: not checked yet)."""
    found: dict[str, int | None] = {}
    for meta in (ROOT / "mutants" / "airflow_provider_vapi").rglob("*.py.meta"):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        found.update({name: code for name, code in codes.items() if _counted(name)})
    return found


def score(out: Path | None = None) -> float:
    """Print (and with ``out``, write as Markdown) the score of the last run, per module."""
    from mutmut.stats import status_by_exit_code

    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for meta in sorted((ROOT / "mutants" / "airflow_provider_vapi").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        module = str(meta.relative_to(ROOT / "mutants"))[: -len(".meta")]
        for name, code in data.get("exit_code_by_key", {}).items():
            if not _counted(name):
                continue
            status = status_by_exit_code[code] if code is not None else "not checked"
            per_module[module][status] += 1
            if status not in ("killed", "timeout", "caught by type check", "not checked"):
                survivors.append(f"{name}: {status}")
    lines = ["| module | killed | checked | not checked | score |", "| --- | --- | --- | --- | --- |"]
    killed_all = total_all = unchecked_all = 0
    for module, counts in sorted(per_module.items()):
        unchecked = counts["not checked"]
        total = sum(counts.values()) - unchecked
        killed = counts["killed"] + counts["timeout"] + counts["caught by type check"]
        killed_all, total_all, unchecked_all = (
            killed_all + killed,
            total_all + total,
            unchecked_all + unchecked,
        )
        lines.append(f"| {module} | {killed} | {total} | {unchecked} | {100 * killed / max(total, 1):.1f}% |")
    result = 100 * killed_all / max(total_all, 1)
    lines.append(
        f"| **all** | **{killed_all}** | **{total_all}** | **{unchecked_all}** | **{result:.1f}%** |"
    )
    if unchecked_all:
        result = 0.0  # an interrupted run proves nothing
    text = "\n".join(lines) + "\n\nNot killed:\n" + "".join(f"- {s}\n" for s in survivors)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", nargs="*", help="only these mutants (fnmatch); default: all counted")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--score", action="store_true", help="only print the last run's score")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="only those of the mutants the last run did not kill (not checked, survived, no tests)",
    )
    parser.add_argument("--fail-under", type=float, default=90.0)
    parser.add_argument("--markdown", type=Path, help="also write the score table here")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    _configure()
    names = list(args.mutants or PROMISES)
    if args.resume:  # of these mutants (default: all counted), those the last run did not kill
        from mutmut.stats import status_by_exit_code

        names = [
            name
            for name, code in sorted(_results().items())
            if any(fnmatch.fnmatch(name, p) for p in names)
            and (code is None or status_by_exit_code[code] in ("survived", "no tests"))
        ]
        print(f"Resuming: {len(names)} mutants not killed by the last run.")
    if not args.score and names:
        from mutmut.__main__ import cli

        try:
            cli.main(
                ["run", "--max-children", str(args.max_children), *names],
                standalone_mode=False,
            )
        except SystemExit as exc:
            if exc.code:
                return int(exc.code) if isinstance(exc.code, int) else 1
    result = score(args.markdown)
    if result < args.fail_under:
        print(f"Mutation score {result:.1f}% is under {args.fail_under}%.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
