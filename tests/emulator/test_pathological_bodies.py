"""Every body the emulator cannot take is a JSON 400 in Vapi's shape: never a 500, never text."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from airflow_provider_vapi.emulator.bodies import MAX_BODY_BYTES, TOO_DEEP_MESSAGE, TOO_LARGE_MESSAGE
from tests.emulator.conftest import error

JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def call_with_metadata(emu: Any, metadata: Any) -> bytes:
    return json.dumps(emu.call_body(assistantOverrides={"metadata": metadata})).encode()


def bodies(emu: Any) -> dict[str, tuple[bytes, str | None]]:
    """name -> (raw body, the message expected, or None for any 'Unexpected ...' message)."""
    huge = call_with_metadata(emu, {"blob": "x" * (MAX_BODY_BYTES + 10)})
    return {
        "deep-in-metadata-500": (call_with_metadata(emu, nested(500)), TOO_DEEP_MESSAGE),
        "deep-objects-100k": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, TOO_DEEP_MESSAGE),
        "deep-arrays-100k": (b"[" * 100_000 + b"]" * 100_000, TOO_DEEP_MESSAGE),
        "deep-unclosed": (b"[" * 100_000, TOO_DEEP_MESSAGE),
        "huge-float": (call_with_metadata(emu, 1).replace(b'"metadata": 1', b'"x": 1e999'), None),
        "huge": (huge, TOO_LARGE_MESSAGE),
        "invalid-utf8": (b'{"name": "\xff\xfe\xfd"}', None),
        "nan": (call_with_metadata(emu, 1).replace(b'"metadata": 1', b'"maxDurationSeconds": NaN'), None),
        "infinity": (
            call_with_metadata(emu, 1).replace(b'"metadata": 1', b'"maxDurationSeconds": -Infinity'),
            None,
        ),
        "huge-integer": (call_with_metadata(emu, 1).replace(b'"metadata": 1', b'"x": ' + b"9" * 5000), None),
        "not-json": (b"{nope", None),
        "null": (b"null", "Unexpected token n in JSON at position 0"),
        "string": (b' "x"', 'Unexpected token " in JSON at position 1'),
        "number": (b"12", "Unexpected token 1 in JSON at position 0"),
        "true": (b"true", "Unexpected token t in JSON at position 0"),
    }


ROUTES = [
    ("POST", "/call"),
    ("PATCH", "/call/00000000-0000-4000-8000-000000000000"),
    ("DELETE", "/call/00000000-0000-4000-8000-000000000000"),
    ("POST", "/assistant"),
    ("POST", "/control/00000000-0000-4000-8000-000000000000"),
    ("POST", "/_emulator/faults"),
]


@pytest.mark.parametrize(
    "name",
    [
        "deep-in-metadata-500",
        "deep-objects-100k",
        "deep-arrays-100k",
        "deep-unclosed",
        "huge",
        "invalid-utf8",
        "nan",
        "infinity",
        "huge-integer",
        "huge-float",
        "not-json",
        "null",
        "string",
        "number",
        "true",
    ],
)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_pathological_body_is_a_json_400(emu, name, method, path):
    raw, expected = bodies(emu)[name]
    answer = httpx.request(method, emu.url + path, content=raw, headers={**JSON, **emu.headers}, timeout=30)
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:200]
    message = error(answer, 400)
    if expected is None:
        assert isinstance(message, str) and message.startswith("Unexpected "), message
    else:
        assert message == expected
    assert emu.calls() == []
    if not path.startswith("/_emulator"):
        (entry,) = emu.requests()
        assert entry["status"] == 400 and entry["body"] is None, "nothing of the body is kept"
    assert emu.health()["status"] == "ok"


def test_deep_but_reasonable_nesting_is_fine(emu, http):
    answer = http.post("/call", content=call_with_metadata(emu, nested(90)), headers=JSON)
    assert answer.status_code == 201, answer.text[:300]
    assert answer.json()["assistantOverrides"]["metadata"] == nested(90)


def test_an_array_body_is_each_routes_own_400(emu, http):
    assert error(http.post("/call", json=[])) == ["body must be an object"]
    assert error(http.post("/assistant", json=[{}])) == ["body must be an object"]
