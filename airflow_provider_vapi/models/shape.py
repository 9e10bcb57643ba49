"""Is a body JSON at all? The check that runs before any other, so no later step can blow up.

Whatever reaches ``POST /call`` goes through legacy upgrades, nested validation, pydantic and
httpx's JSON encoder; each would fail in its own way (``RecursionError`` on a cycle or 600 levels,
``UnicodeEncodeError`` on a lone surrogate, ``ValueError`` on NaN, ``TypeError`` on bytes or an
integer key). :func:`shape_problems` finds all of those first and names where they are, without
quoting any value (a value may be a secret).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel, SecretStr

#: Deeper than any real Vapi body (a tool's JSON schema inside a model inside an assistant is ~15).
MAX_DEPTH: Final = 64

Location = tuple[str | int, ...]
Problem = tuple[Location, str]

#: Besides str and float: what pydantic turns into JSON on the way out (rows from a database often
#: hold ``Decimal``, ``UUID`` and dates).
_SCALARS: Final = (bool, int, type(None), datetime, date, time, UUID, BaseModel, SecretStr)


def _text_problem(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds a character that is not valid Unicode (a lone surrogate at position {exc.start}): "
            "remove it, or decode the source text properly (it often comes from bytes read with the "
            "wrong encoding)"
        )
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float | Decimal):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        return None if finite else f"is {value}, which JSON cannot carry: give a finite number"
    if isinstance(value, _SCALARS):
        return None
    return (
        f"is a {type(value).__name__}, which JSON cannot carry: give a string, number, boolean, "
        "list or object"
    )


def shape_problems(body: Any) -> list[Problem]:
    """Where ``body`` is not plain JSON: cycles, depth past :data:`MAX_DEPTH`, keys that are not
    strings, text that is not valid Unicode, NaN or infinite numbers, values of other types."""
    problems: list[Problem] = []
    _walk(body, (), frozenset(), problems)
    return problems


def _walk(node: Any, loc: Location, path: frozenset[int], problems: list[Problem]) -> None:
    if isinstance(node, Mapping | list | tuple):
        if id(node) in path:
            problems.append((loc, "refers back to an object that contains it (a cycle): JSON is a tree"))
            return
        if len(loc) >= MAX_DEPTH:
            problems.append((loc, f"is nested deeper than {MAX_DEPTH} levels: no Vapi body is this deep"))
            return
        inner = path | {id(node)}
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str):
                    problems.append(
                        ((*loc, repr(key)[:40]), "has a key that is not a string: JSON keys are text")
                    )
                    continue
                key_problem = _text_problem(key)
                if key_problem:
                    problems.append((loc, f"has a key that {key_problem}"))
                    continue
                _walk(value, (*loc, key), inner, problems)
        else:
            for index, value in enumerate(node):
                _walk(value, (*loc, index), inner, problems)
        return
    problem = _scalar_problem(node)
    if problem:
        problems.append((loc, problem))
