"""The one Go-style JSON field reader (``sidecar.policy.go_json``): folding as Go's
``encoding/json`` folds field names, ambiguity refused, documented names read in any case."""

from __future__ import annotations

import json

import pytest

from sidecar.policy.go_json import Ambiguous, go_fields, go_fold, go_keys, go_object
from sidecar.policy.guards.reading import Unreadable, lookup

ONE_FIELD = [
    ("event", "EVENT"),
    ("req_param", "Req_Param"),
    ("size", "\u017fize"),  # the long s: Go's SimpleFold orbit of s holds it
    ("kind", "\u212aind"),  # the Kelvin sign: in k's orbit
    ("price", "pr\u0131ce"),  # the dotless i: SimpleFold leads to I by its upper case
    ("\u00e9t\u00e9", "\u00c9T\u00c9"),  # non-ASCII letters fold too
]
TWO_FIELDS = [
    ("id", "\u0130d"),  # the dotted capital I folds to a lower-case i: no folded name has one
    ("amount", "amount "),
    ("strasse", "stra\u00dfe"),  # full case folding (ß -> ss) is not Go's simple folding
]


@pytest.mark.parametrize(("a", "b"), ONE_FIELD)
def test_names_go_takes_as_one_field_fold_alike_and_are_refused_together(a: str, b: str) -> None:
    assert go_fold(a) == go_fold(b)
    with pytest.raises(Ambiguous, match="twice in different letter cases"):
        json.loads(json.dumps({a: 1, b: 2}), object_pairs_hook=go_object)
    assert go_keys({b: 1}, a) == [b]


@pytest.mark.parametrize(("a", "b"), TWO_FIELDS)
def test_names_go_keeps_apart_stay_apart(a: str, b: str) -> None:
    assert go_fold(a) != go_fold(b)
    assert json.loads(json.dumps({a: 1, b: 2}), object_pairs_hook=go_object) == {a: 1, b: 2}


def test_a_repeated_key_is_refused() -> None:
    with pytest.raises(Ambiguous, match="repeats a key"):
        json.loads('{"a": 1, "a": 1}', object_pairs_hook=go_object)


def test_fields_are_read_by_their_documented_names_and_the_rest_is_named_unknown() -> None:
    fields = go_fields({"CHANNEL": "x", "Event": "y", "extra": 1}, ("channel", "event", "id"))
    assert fields.values == {"channel": "x", "event": "y"}
    assert fields.unknown == ("extra",)
    assert fields.get("id") is None


def test_the_guards_rest_body_reader_folds_the_same_way() -> None:
    assert lookup({"\u017fize": "5"}, "size", "body") == "5"
    assert lookup({"pr\u0131ce": "5"}, "price", "body") == "5"
    with pytest.raises(Unreadable, match="given 2 times"):
        lookup({"size": "1", "\u017fize": "1000"}, "size", "body")
