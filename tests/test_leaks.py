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
