"""Where the project's reference data lives: ``../shared`` beside the checkout (never copied in).

Tests that need it skip with a clear reason when it is absent (a checkout without ``shared/``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("VAPI_SHARED_DIR", REPO_ROOT.parent / "shared"))
OPENAPI_PATH = SHARED_DIR / "vapi" / "openapi.json"
SEEDS_DIR = SHARED_DIR / "seeds"


@cache
def _load_openapi() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text())


def openapi_spec() -> dict[str, Any]:
    """Vapi's OpenAPI document, or skip the calling test when ``shared/`` is absent."""
    if not OPENAPI_PATH.is_file():
        pytest.skip(f"Vapi's OpenAPI spec is not at {OPENAPI_PATH} (set VAPI_SHARED_DIR to its folder)")
    return _load_openapi()


def seed_payload() -> dict[str, Any]:
    """The full example body of the seed page (``POST /call/phone``, 2024 API), parsed from its curl."""
    pages = sorted(SEEDS_DIR.glob("*.txt")) if SEEDS_DIR.is_dir() else []
    if not pages:
        pytest.skip(f"the seed reference page is not in {SEEDS_DIR}")
    text = pages[0].read_text()
    match = re.search(r"--data '(\{.*?\n\})'", text, re.S)
    assert match, "the seed page no longer has a curl --data body"
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def strings_where_the_spec_wants_them(node: Any) -> None:
    """The seed page's ``{}`` placeholders where the spec wants strings (a condition's ``value``, a
    JSON schema's ``required`` names) are refused by Vapi (and the emulator): make them strings."""
    if isinstance(node, list):
        for item in node:
            strings_where_the_spec_wants_them(item)
    elif isinstance(node, dict):
        for condition in node.get("conditions", []):
            condition["value"] = "<string>"
        if isinstance(node.get("structuredDataSchema"), dict):
            node["structuredDataSchema"]["required"] = ["<string>"]
        for value in node.values():
            strings_where_the_spec_wants_them(value)


def ended_reasons() -> list[str]:
    """Every ``endedReason`` value the spec lists for a Call."""
    spec = openapi_spec()
    enum: list[str] = spec["components"]["schemas"]["Call"]["properties"]["endedReason"]["enum"]
    return enum


class Exploding(Mapping[str, Any]):
    """A mapping that raises on every read: hostile input the walkers must survive."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1
