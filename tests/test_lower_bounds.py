"""The lower bounds declared in pyproject.toml are the versions we test.

In any venv: every installed direct dependency (runtime, and the extras that are installed) is at
least its declared lower bound, so a bound raised in pyproject.toml but not in the venv (or the
reverse) shows up. In the lowest leg (``make test-compat`` sets ``VAPI_LOWEST_DEPS=1`` and
installs with ``uv pip install --resolution lowest-direct``): each one is installed at exactly its
declared bound, so the bound is a version that the whole suite ran against.
"""

from __future__ import annotations

import os
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
LOWEST = os.environ.get("VAPI_LOWEST_DEPS") == "1"
#: Extras whose packages the lowest leg installs (``.[dev]``, which pulls in ``emulator`` and ``parquet``).
TESTED_EXTRAS = ("emulator", "dev", "parquet")


def lower_bound(requirement: Requirement) -> Version | None:
    """The version in ``>=X`` (``==X`` counts too), or None when the requirement has none."""
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(bounds) if bounds else None


def declared(pyproject: Path = PYPROJECT) -> dict[str, list[Requirement]]:
    """``{"runtime": [...], extra: [...]}`` with self-references (``pkg[emulator]``) left out."""
    project = tomllib.loads(pyproject.read_text())["project"]
    own = canonicalize_name(project["name"])
    groups = {"runtime": project["dependencies"], **project.get("optional-dependencies", {})}
    return {
        group: [r for r in map(Requirement, reqs) if canonicalize_name(r.name) != own]
        for group, reqs in groups.items()
    }


def installed(name: str) -> Version | None:
    try:
        return Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        return None


DECLARED = declared()
RUNTIME = DECLARED["runtime"]
EXTRAS = [r for extra in TESTED_EXTRAS for r in DECLARED.get(extra, [])]


def _id(requirement: Requirement) -> str:
    return str(requirement)


def test_every_runtime_and_tested_dependency_declares_a_lower_bound():
    missing = [str(r) for r in RUNTIME + EXTRAS if lower_bound(r) is None]
    assert not missing, f"declare a tested lower bound (name>=X) for: {missing}"


@pytest.mark.parametrize("requirement", RUNTIME + EXTRAS, ids=_id)
def test_installed_version_is_at_least_the_declared_bound(requirement: Requirement):
    version = installed(requirement.name)
    if version is None:
        assert requirement not in RUNTIME, f"runtime dependency {requirement.name} is not installed"
        pytest.skip(f"{requirement.name} is not installed in this venv")
    bound = lower_bound(requirement)
    assert bound is not None
    assert version >= bound, (
        f"{requirement.name} {version} is installed but pyproject.toml requires {requirement}: "
        "reinstall the venv (make install / make test-compat rebuild it when pyproject.toml changes)"
    )


@pytest.mark.skipif(
    not LOWEST, reason="only in the lowest-versions leg (make test-compat sets VAPI_LOWEST_DEPS=1)"
)
@pytest.mark.parametrize("requirement", RUNTIME + EXTRAS, ids=_id)
def test_lowest_leg_installs_exactly_the_declared_bound(requirement: Requirement):
    version = installed(requirement.name)
    bound = lower_bound(requirement)
    assert version is not None, f"{requirement.name} is not installed in the lowest leg"
    assert version == bound, (
        f"the lowest leg installed {requirement.name} {version}, not the declared bound {bound}: "
        f"something else that gets installed requires more (see `uv pip tree --invert --package "
        f"{requirement.name}`); raise the bound in pyproject.toml to the lowest version that installs "
        "and passes, and say why in a comment next to it"
    )


def test_bounds_parse_as_the_constraints_script_reads_them():
    """.ci/lowest_constraints.py (standard library only) pins what this module reads as bounds."""
    import importlib.util

    script = PYPROJECT.parent / ".ci" / "lowest_constraints.py"
    spec = importlib.util.spec_from_file_location("lowest_constraints", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pins = {Requirement(line).name: Requirement(line) for line in module.constraints(PYPROJECT)}
    expected = {r.name for r in RUNTIME if canonicalize_name(r.name) != "apache-airflow"}
    assert set(pins) == expected
    for requirement in RUNTIME:
        if requirement.name in pins:
            (spec_,) = pins[requirement.name].specifier
            assert Version(spec_.version) == lower_bound(requirement)


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # dev extra not installed: only the property test below is skipped
    given = settings = None


@pytest.mark.skipif(given is None, reason="hypothesis is not installed")
def test_lower_bound_reads_the_version_after_greater_or_equal():
    @settings(max_examples=100, deadline=None)
    @given(
        name=st.from_regex(r"[a-z][a-z0-9-]{0,12}[a-z0-9]", fullmatch=True),
        release=st.lists(st.integers(0, 300), min_size=1, max_size=4),
        upper=st.booleans(),
    )
    def check(name: str, release: list[int], upper: bool) -> None:
        version = ".".join(map(str, release))
        spec = f"{name}>={version}" + (f",<{release[0] + 1}" if upper else "")
        assert lower_bound(Requirement(spec)) == Version(version)

    check()
