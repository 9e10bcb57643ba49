"""Whitelist and type checks of a request body against the spec's schemas (:mod:`.spec_schemas`).

What Vapi's NestJS ``ValidationPipe`` (``whitelist``, ``forbidNonWhitelisted``) and the DTOs'
class-validator decorators answer, in their words, each message prefixed with the path of the
object it is about (``assistant.model.property foo should not exist``,
``assistant.firstMessage must be a string``, ``customers.0.nested property customers must be
either object or array``). ``null`` is "not given" (``@IsOptional``). A ``oneOf`` with a
discriminator picks its branch by that property; an unknown value is refused with the list of
known ones. Only names and JSON types are checked: lengths, ranges and formats that matter to the
emulator are in :mod:`.validation`.
"""

from __future__ import annotations

from typing import Any

from .spec_schemas import OBJECTS, UNIONS

_TYPE_MESSAGES = {
    "string": "must be a string",
    "number": "must be a number conforming to the specified constraints",
    "integer": "must be an integer number",
    "boolean": "must be a boolean value",
    "object": "must be an object",
    "any": "",
}


def object_errors(obj: dict[str, Any], schema: str, prefix: str = "") -> list[str]:
    """Every violation of ``obj`` against the object schema ``schema`` (``prefix``: its path)."""
    errors: list[str] = []
    _object(obj, schema, prefix, errors)
    return errors


def _is(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return kind == "number" or float(value).is_integer()


def _object(obj: dict[str, Any], schema: str, prefix: str, errors: list[str]) -> None:
    props = OBJECTS[schema]
    for key, value in obj.items():
        code = props.get(key)
        if code is None:
            errors.append(f"{prefix}property {key} should not exist")
        elif value is not None:
            _value(value, code, prefix, key, errors)


def _value(value: Any, code: str, prefix: str, key: str, errors: list[str]) -> None:
    if code.startswith("[]"):
        if not isinstance(value, list):
            errors.append(f"{prefix}{key} must be an array")
        else:
            _items(value, code[2:], prefix, key, errors)
    elif code[0] in "#@":
        if isinstance(value, dict):
            _nested(value, code, f"{prefix}{key}.", errors)
        else:
            errors.append(f"{prefix}nested property {key} must be either object or array")
    else:
        kinds = code.split("|")
        if not any(_is(value, kind) for kind in kinds):
            errors.append(f"{prefix}{key} {_TYPE_MESSAGES[kinds[0]]}")


def _nested(obj: dict[str, Any], code: str, prefix: str, errors: list[str]) -> None:
    """An object whose schema is ``#Name``, or the branch of the union ``@Name`` it names."""
    if code[0] == "#":
        _object(obj, code[1:], prefix, errors)
        return
    prop, branches = UNIONS[code[1:]]
    chosen = obj.get(prop)
    branch = branches.get(chosen) if isinstance(chosen, str) else None
    if branch is None:
        errors.append(f"{prefix}{prop} must be one of the following values: {', '.join(branches)}")
        return
    _object(obj, branch, prefix, errors)


def _items(items: list[Any], code: str, prefix: str, key: str, errors: list[str]) -> None:
    """The elements of an array property ``key`` (``code``: their type code)."""
    if code[0] in "#@":
        for i, item in enumerate(items):
            if isinstance(item, dict):
                _nested(item, code, f"{prefix}{key}.{i}.", errors)
            else:
                errors.append(f"{prefix}{key}.{i}.nested property {key} must be either object or array")
    elif code.startswith("[]"):
        for i, item in enumerate(items):
            _value(item, code, f"{prefix}{key}.", str(i), errors)
    else:
        kinds = code.split("|")
        if not all(any(_is(item, kind) for kind in kinds) for item in items):
            errors.append(f"{prefix}each value in {key} {_TYPE_MESSAGES[kinds[0]]}")
