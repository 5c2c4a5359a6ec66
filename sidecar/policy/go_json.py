"""JSON objects read the way Gate's servers read them: Go's ``encoding/json``. Pure.

Go matches an object's keys to a struct's fields without regard to letter case, and when several
keys of one object match the same field the last one wins, silently. So ``{"event": "subscribe",
"EVENT": "api"}`` is one field to Gate, holding ``"api"``. What the sidecar checks must be what
Gate runs, so:

- :func:`go_fold` is Go's folding of a field name (``foldName`` in ``encoding/json``): ASCII
  letters to upper case, every other rune to the smallest rune of its simple case-folding orbit.
  Three non-ASCII runes fold onto ASCII letters: the long s (U+017F) is ``S``, the Kelvin sign
  (U+212A) is ``K`` and the dotless i (U+0131, whose upper case is ``I``) is ``I``, so
  ``"\u017fize"`` is ``size`` and ``"pr\u0131ce"`` is ``price`` to Gate.
- :func:`go_object` is a ``json.loads`` ``object_pairs_hook``: an object whose keys Gate would
  take as one field (the same key twice, or two spellings of it) is :class:`Ambiguous`, never
  guessed at.
- :func:`go_fields` reads one object's fields by their documented names, in any letter case, and
  names the keys it does not know, for a reader that refuses what it cannot read.

Python has no simple case folding; the orbit of a non-ASCII rune is approximated by closing over
its one-rune upper, lower and case-folded forms, leaving ASCII out (only the three runes above fold
onto ASCII in Go). An approximation can only join more names than Go does, which refuses more,
never less.

The guards' REST body reader (:func:`sidecar.policy.guards.reading.lookup`) and the WebSocket frame
reader (:mod:`sidecar.proxy.ws.envelope`) both use this one piece.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

# The runes outside ASCII that Go's foldRune takes to an ASCII letter: unicode.SimpleFold leads
# from each to one (long s U+017F -> S and Kelvin U+212A -> K by its orbit table, dotless i
# U+0131 -> I by ToUpper). The dotted capital I (U+0130) folds to a lower-case i, which no folded
# name holds: it matches nothing, here as in Go.
_TO_ASCII = {"\u017f": "S", "\u212a": "K", "\u0131": "I"}


class Ambiguous(ValueError):
    """An object holds keys Gate would take as one field; the message names the field folded,
    never a value."""


@functools.lru_cache(maxsize=4096)
def _fold_rune(rune: str) -> str:
    if rune in _TO_ASCII:
        return _TO_ASCII[rune]
    orbit, todo = {rune}, [rune]
    while todo:
        r = todo.pop()
        for other in (r.upper(), r.lower(), r.casefold()):
            if len(other) == 1 and not other.isascii() and other not in orbit:
                orbit.add(other)
                todo.append(other)
    return min(orbit)


def go_fold(name: str) -> str:
    """The name as Go compares field names: two names with the same fold are one field."""
    if name.isascii():
        return name.upper()
    return "".join(r.upper() if r.isascii() else _fold_rune(r) for r in name)


def _short(name: str) -> str:
    return name if len(name) <= 32 and name.isprintable() else f"{name[:32]!r}"


def go_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` for ``json.loads``: the object, or :class:`Ambiguous` when two of its
    keys are one field to Gate (a repeated key included: decoders disagree on which copy wins)."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise Ambiguous("an object repeats a key")
    if len(doc) < 2:
        return doc
    # The common case, every key ASCII, folds with str.upper alone (a frame's hot path).
    ascii_only = "".join(doc).isascii()
    if len({k.upper() for k in doc} if ascii_only else {go_fold(k) for k in doc}) != len(doc):
        seen: set[str] = set()
        for key in doc:
            folded = go_fold(key)
            if folded in seen:
                name = _short(folded.lower())
                raise Ambiguous(f"{name} is given twice in different letter cases")
            seen.add(folded)
    return doc


@dataclass(frozen=True, slots=True)
class Fields:
    """One object's fields by their documented names (values only for the names asked for)."""

    values: dict[str, object]  # documented name -> value
    unknown: tuple[str, ...]  # keys that are none of the names asked for, as sent

    def get(self, name: str) -> object | None:
        return self.values.get(name)


@functools.lru_cache(maxsize=64)
def _wanted(names: tuple[str, ...]) -> dict[str, str]:
    return {go_fold(n): n for n in names}


def go_fields(obj: Mapping[str, object], names: tuple[str, ...]) -> Fields:
    """``obj``'s fields by the documented ``names`` (matched as Gate matches them); raises
    :class:`Ambiguous` when two keys match one name (an object parsed through :func:`go_object`
    never does)."""
    wanted = _wanted(names)
    values: dict[str, object] = {}
    unknown: list[str] = []
    for key, value in obj.items():
        name = wanted.get(go_fold(key))
        if name is None:
            unknown.append(key)
        elif name in values:
            raise Ambiguous(f"{name} is given twice in different letter cases")
        else:
            values[name] = value
    return Fields(values, tuple(unknown))


def go_keys(obj: Mapping[str, object], name: str) -> list[str]:
    """The keys of ``obj`` Gate would read as the field ``name``, as sent."""
    folded = go_fold(name)
    return [key for key in obj if go_fold(key) == folded]
