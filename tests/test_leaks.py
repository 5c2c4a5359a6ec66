"""The leak scanner itself (tests/leaks.py): it must find a registered secret wherever a test could
see it, or the suite-wide check could never fail."""

from __future__ import annotations

import logging
import secrets

import pytest

from tests.leaks import MIN_LEN, leaks_in, record_text, register_secret


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sidecar.x", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


@pytest.fixture
def secret() -> str:
    value = "leak-" + secrets.token_hex(12)
    register_secret(value)
    return value


def test_a_secret_in_a_log_message_is_found(secret: str) -> None:
    assert leaks_in({"log": record_text(_record(f"loaded {secret}"))}) == ["log"]


def test_a_secret_in_an_extra_field_is_found(secret: str) -> None:
    assert leaks_in({"log": record_text(_record("loaded", audit={"x": secret}))}) == ["log"]


def test_a_secret_in_a_traceback_is_found(secret: str) -> None:
    try:
        raise ValueError(secret)
    except ValueError:
        record = _record("failed")
        record.exc_info = __import__("sys").exc_info()
    assert leaks_in({"log": record_text(record)}) == ["log"]


def test_a_secret_in_an_answer_is_found(secret: str) -> None:
    assert leaks_in({"answer": f'{{"message": "{secret}"}}', "other": "clean"}) == ["answer"]


def test_clean_texts_and_short_values_are_not_reported() -> None:
    register_secret("x" * (MIN_LEN - 1))
    assert leaks_in({"log": "nothing here " + "x" * (MIN_LEN - 2)}) == []


def test_every_secret_is_found_however_many_were_registered_after_it(secret: str) -> None:
    # The scanner compiles secrets in batches that merge as more come (tests/leaks.py): the
    # first one is found in every state the batches pass through.
    later = []
    for _ in range(40):
        later.append("leak-" + secrets.token_hex(12))
        register_secret(later[-1])
        assert leaks_in({"first": f"x{secret}x", "clean": "nothing"}) == ["first"]
        assert leaks_in({"last": later[-1]}) == ["last"]
    assert leaks_in({str(i): f"[{v}]" for i, v in enumerate(later)}) == [str(i) for i in range(40)]
