"""README.md stays true to the code: the commands it starts with, the reference tables (every
parameter documented exists, every parameter that exists is documented) and the emulator's table.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The body of a heading, up to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(heading)}$", text, re.M)
    assert match, f"README has no section {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    following = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: following.start()] if following else rest


def _first_cells(section: str) -> set[str]:
    """Backquoted names in the first column of the section's tables (``a``, ``b``, ``c`` -> 3)."""
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_]+)", line.split("|")[1]))
    return names


def _parameters(cls: type) -> set[str]:
    return {p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")}


def test_readme_starts_with_the_two_commands(readme):
    first_block = readme.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block


@pytest.mark.parametrize(
    ("heading", "path"),
    [
        ("PlaceCallOperator", "airflow_provider_vapi.operators.PlaceCallOperator"),
        ("CallStatusSensor", "airflow_provider_vapi.sensors.CallStatusSensor"),
        ("CallStatusTrigger", "airflow_provider_vapi.triggers.CallStatusTrigger"),
        ("VapiHook", "airflow_provider_vapi.hooks.VapiHook"),
        ("RunStructuredOutputOperator", "airflow_provider_vapi.operators.RunStructuredOutputOperator"),
        ("ExportCallsOperator", "airflow_provider_vapi.operators.ExportCallsOperator"),
        ("LoadCallsOperator", "airflow_provider_vapi.operators.LoadCallsOperator"),
        ("RunCampaignOperator", "airflow_provider_vapi.operators.RunCampaignOperator"),
        ("CampaignStatusSensor", "airflow_provider_vapi.sensors.CampaignStatusSensor"),
        ("LoadCampaignContactsOperator", "airflow_provider_vapi.operators.LoadCampaignContactsOperator"),
    ],
)
def test_reference_tables_document_exactly_the_parameters(readme, heading, path):
    module, _, name = path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    documented = _first_cells(_section(readme, heading).split("| method")[0])
    expected = _parameters(cls)
    if heading in ("CallStatusSensor", "CampaignStatusSensor"):
        expected |= {"timeout", "mode"}  # BaseSensorOperator's, documented because they matter here
    assert documented == expected


def test_hook_methods_in_the_readme_exist():
    from airflow_provider_vapi.hooks import VapiHook

    readme = README.read_text(encoding="utf-8")
    hook_table, wrappers = _section(readme, "VapiHook").split("| method")[1].split("| wrapper method")
    named = set(re.findall(r"`([a-z_]+)\(", hook_table)) | set(re.findall(r"\(`(a[a-z_]+)`\)", hook_table))
    assert named
    assert {m for m in named if not hasattr(VapiHook, m)} == set()
    from airflow_provider_vapi.campaigns.api import CampaignApi
    from airflow_provider_vapi.structured_outputs.api import StructuredOutputApi

    on_campaigns = set(re.findall(r"`?(?:CampaignApi\(hook\))?\.([a-z_]+)\(`?", wrappers.split("StructuredOutputApi")[0]))
    on_campaigns |= set(re.findall(r"\(`\.(a[a-z_]+)`\)", wrappers))
    assert {"create", "get", "aget", "cancel", "acancel", "iter_contact_pages"} <= on_campaigns
    assert {m for m in on_campaigns if not hasattr(CampaignApi, m)} == set()
    on_outputs = set(re.findall(r"StructuredOutputApi\(hook\)\.([a-z_]+)\(", wrappers))
    assert on_outputs == {"get", "run"} and all(hasattr(StructuredOutputApi, m) for m in on_outputs)


def test_emulator_outcome_table_matches_the_emulators_script(readme):
    from airflow_provider_vapi.emulator.outcomes import OUTCOMES
    from airflow_provider_vapi.models import classify_ended_reason

    rows = {}
    for line in _section(readme, "The emulator").splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"\d{4}", cells[0]):
            rows[cells[0]] = cells
    assert set(rows) == set(OUTCOMES)
    for suffix, outcome in OUTCOMES.items():
        _, label, reason, outcome_class, analysis = rows[suffix]
        assert label == outcome.label
        assert reason == outcome.ended_reason
        assert outcome_class == classify_ended_reason(outcome.ended_reason).value
        expected_analysis = outcome.dials and outcome.answers and outcome.messages >= 2
        assert analysis == ("yes" if expected_analysis else "no")


def test_seeded_ids_in_the_readme_are_the_emulators(readme):
    from airflow_provider_vapi.emulator import constants

    assert constants.ASSISTANT_ID in readme
    assert constants.PHONE_NUMBER_ID in readme
    assert f"`{constants.DEFAULT_API_KEY}`" in readme


def _readme_import_paths(text: str) -> tuple[set[tuple[str, str]], set[str]]:
    """``from airflow_provider_vapi... import a, b`` pairs and dotted ``airflow_provider_vapi.x.y``
    mentions, wherever they are in the text (code blocks, tables, prose)."""
    imports = {
        (module, name.split(" as ")[0].strip())
        for module, names in re.findall(r"from (airflow_provider_vapi[\w.]*) import ([\w, ]+)", text)
        for name in names.split(",")
        if name.strip()
    }
    dotted = set(re.findall(r"\b(airflow_provider_vapi(?:\.\w+)+)", text))
    return imports, dotted


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted``, then follow the rest as attributes."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            found = getattr(found, attr)
        return found
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("document", ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"])
def test_every_import_path_in_the_docs_works(document):
    """Each ``from airflow_provider_vapi.x import y`` and each dotted path a document names imports."""
    text = (README.parent / document).read_text(encoding="utf-8")
    imports, dotted = _readme_import_paths(text)
    if document == "README.md":
        assert ("airflow_provider_vapi.operators", "PlaceCallOperator") in imports  # the parser reads them
    broken = []
    for module, name in sorted(imports):
        try:
            _resolve(f"{module}.{name}")
        except (ImportError, AttributeError) as exc:
            broken.append(f"from {module} import {name}: {exc}")
    for path in sorted(dotted - {"airflow_provider_vapi.x"}):
        try:
            _resolve(path)
        except (ImportError, AttributeError) as exc:
            broken.append(f"{path}: {exc}")
    assert not broken, f"{document}: import paths that do not work:\n" + "\n".join(broken)
