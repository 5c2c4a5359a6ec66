"""pydantic's validation errors as lines a person acts on: the field, what was expected, an example.

``keys[0].polciy: unknown field 'polciy' (did you mean 'policy'?)`` instead of "Extra inputs are
not permitted"; ``clock.interval_s: expected a duration in seconds (a number), e.g.
interval_s: 300 (got '5m')`` instead of "Input should be a valid number". The example is the
field's own default when it has one, else a sample from :data:`EXAMPLES`, else one made from the
field's type, so a field added later gets a usable message without touching this module.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined

from sidecar.settings import NOT_SHOWN

#: Samples for required fields (no default to show), by field name.
EXAMPLES: dict[str, str] = {
    "keys": "[{name: spot-reader, listen: 127.0.0.1:8081, source: {...}, policy: read-only}]",
    "name": "spot-reader",
    "listen": "127.0.0.1:8081",
    "source": "{env: {key_var: GATE_KEY, secret_var: GATE_SECRET}}",
    "policy": "read-only",
    "methods": "[GET, POST]",
    "path": "/api/v4/spot/orders",
    "address": "https://vault.example:8200",
    "mount": "secret",
}

#: What each kind of type error expects, by pydantic's error type.
_EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping (field: value)",
    "model_type": "a mapping (field: value)",
    "model_attributes_type": "a mapping (field: value)",
    "path_type": "a file path",
}
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def format_errors(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem of ``exc`` (raised validating ``root``), each naming its field."""
    errors = exc.errors()
    suggested: set[tuple[int | str, ...]] = set()  # fields a typo's suggestion already names
    unknown: list[str] = []
    for err in errors:
        if err["type"] == "extra_forbidden":
            line, guess = _unknown_field(err, root)
            unknown.append(line)
            if guess is not None:
                suggested.add((*err["loc"][:-1], guess))
    problems = []
    for err in errors:
        if err["type"] == "extra_forbidden":
            continue
        if err["type"] == "missing" and tuple(err["loc"]) in suggested:
            continue  # `polciy` was meant as `policy`: one line about the typo is enough
        problems.append(_line(err, root))
    return unknown + problems


def location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part:
            continue  # pydantic's own wrappers, e.g. `function-after[_check_listen(), str]`
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _unknown_field(err: ErrorDetails, root: type[BaseModel]) -> tuple[str, str | None]:
    name = str(err["loc"][-1])
    parent = _model(_annotation_at(root, err["loc"][:-1]))
    known = list(parent.model_fields) if parent is not None else []
    guesses = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if guesses:
        hint = f" (did you mean {guesses[0]!r}?)"
    elif known:
        hint = f" (known fields: {', '.join(known)})"
    else:
        hint = ""
    return f"{location(err['loc'])}: unknown field {name!r}{hint}", guesses[0] if guesses else None


def _line(err: ErrorDetails, root: type[BaseModel]) -> str:
    where = location(err["loc"])
    field = _field_at(root, err["loc"])
    name = _field_name(err["loc"])
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "missing":
        example = _example(name, field)
        return f"{where}: required field is missing" + (f", e.g. {example}" if example else "")
    if msg.endswith(NOT_SHOWN):
        return f"{where}: {msg}"  # the value may hold a secret (a password in a URL): never echo it
    value = err.get("input")
    got = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    duration = name is not None and name.endswith("_s")
    if duration and (kind in _EXPECTED or kind in _BOUNDS):
        bound = _bound(err)
        what = "a duration in seconds (a number" + (f" {bound})" if bound else ")")
        return f"{where}: expected {what}{_eg(name, field)}{got}"
    if kind in _EXPECTED:
        return f"{where}: expected {_EXPECTED[kind]}{_eg(name, field)}{got}"
    if kind in _BOUNDS:
        return f"{where}: expected a number {_bound(err)}{_eg(name, field)}{got}"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        ctx = err.get("ctx") or {}
        tag = str(ctx.get("discriminator", "")).strip("'")
        tags = [
            repr(arg)
            for model in _leaves(_annotation_at(root, err["loc"]))
            if isinstance(model, type)
            and issubclass(model, BaseModel)
            and tag in model.model_fields
            for arg in get_args(model.model_fields[tag].annotation)
        ]
        return f"{where}: expected {tag}: one of {', '.join(tags)}{got}"
    if kind == "literal_error":
        return f"{where}: expected {msg.removeprefix('Input should be ')}{got}"
    if got and repr(value) in msg:
        got = ""
    return f"{where}: {msg}{got}"


def _bound(err: ErrorDetails) -> str:
    ctx = err.get("ctx") or {}
    for key, words in (
        ("gt", "greater than"),
        ("ge", "of at least"),
        ("lt", "less than"),
        ("le", "of at most"),
    ):
        if key in ctx:
            return f"{words} {_number(ctx[key])}"
    return ""


def _number(value: object) -> str:
    """A bound as a person writes it (``0``, not ``0.0``); older pydantic releases give the
    bound as text, newer ones as a number."""
    try:
        return f"{float(str(value)):g}"
    except ValueError:
        return str(value)


def _eg(name: str | None, field: FieldInfo | None) -> str:
    example = _example(name, field)
    return f", e.g. {example}" if example else ""


def _example(name: str | None, field: FieldInfo | None) -> str:
    """``name: value`` as it would be written in the file, or "" when nothing sensible."""
    if name is None:
        return ""
    if name in EXAMPLES:
        return f"{name}: {EXAMPLES[name]}"
    if field is None:
        return ""
    default = field.default
    if default is not PydanticUndefined and isinstance(default, bool | int | float | str):
        return f"{name}: {_yaml_scalar(default)}"
    return ""


def _yaml_scalar(value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _field_name(loc: tuple[int | str, ...]) -> str | None:
    names = [p for p in loc if isinstance(p, str) and "[" not in p]
    return names[-1] if names else None


def _field_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> FieldInfo | None:
    return _walk(root, loc)[0]


def _annotation_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> Any:
    return _walk(root, loc)[1]


def _walk(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[FieldInfo | None, Any]:
    """The field at ``loc`` and the type found there (None, None: not a settings field)."""
    field: FieldInfo | None = None
    current: Any = root
    for part in loc:
        if isinstance(part, int) or "[" in part:
            continue  # a list item, or a validator wrapper: the type is unwrapped below
        tagged = _tagged(current, part)
        if tagged is not None:  # a discriminated union's tag (`vault.auth.token`)
            current = tagged
            continue
        model = _model(current)
        if model is None or part not in model.model_fields:
            return None, None
        field = model.model_fields[part]
        current = field.annotation
    return field, current


def _tagged(annotation: Any, tag: str) -> type[BaseModel] | None:
    """The member of a union of models whose Literal discriminator is ``tag``, if any."""
    models = [t for t in _leaves(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(models) < 2:
        return None
    for model in models:
        for info in model.model_fields.values():
            if get_origin(info.annotation) is Literal and get_args(info.annotation) == (tag,):
                return model
    return None


def _model(annotation: Any) -> type[BaseModel] | None:
    """The one settings model inside ``annotation`` (through Optional, list and Annotated)."""
    found = [t for t in _leaves(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    return found[0] if len(found) == 1 else None


def _leaves(annotation: Any) -> Iterator[Any]:
    origin = get_origin(annotation)
    if origin is None:
        yield annotation
    elif origin is Literal:
        return
    elif origin in (Union, types.UnionType, list, Annotated) or origin is tuple:
        for arg in get_args(annotation)[: 1 if origin is Annotated else None]:
            yield from _leaves(arg)
