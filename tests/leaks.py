"""The leak scanner: no test may see a secret in the sidecar's logs or in a bot's answer.

Every helper that makes a secret (an exchange secret, a Vault token, a secret_id, a JWT, a client
token) registers it with :func:`register_secret`. An autouse fixture then scans, after each test,
every log record captured during it (message, extra fields, traceback) and every answer a key
listener sent (status line aside: headers and body), and fails the test that leaked. Values
shorter than :data:`MIN_LEN` are not registered (they would match by chance).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sidecar.proxy import lean_http, lean_listener

MIN_LEN = 12
_secrets: set[str] = set()
_new: list[str] = []  # registered since the last scan, not yet in a compiled batch


@dataclass
class _Batch:
    """Secrets searched by one compiled alternation."""

    values: list[str]
    pattern: re.Pattern[str]


# Compiled in batches, not one pattern of every secret: each test registers fresh secrets, and
# recompiling an alternation of all of them (thousands by the end of a session) after each test
# cost about a fifth of the suite's CPU. A new batch absorbs the batches before it that are no
# larger (as a binary counter carries), so each secret is compiled about log2(n) times and a
# scan searches about log2(n) patterns.
_batches: list[_Batch] = []


def register_secret(*values: str) -> None:
    for value in values:
        if len(value) >= MIN_LEN and value not in _secrets:
            _secrets.add(value)
            _new.append(value)


def _compiled() -> list[re.Pattern[str]]:
    if _new:
        values = _new[:]
        _new.clear()
        while _batches and len(_batches[-1].values) <= len(values):
            values += _batches.pop().values
        pattern = re.compile("|".join(re.escape(s) for s in sorted(values, key=len)[::-1]))
        _batches.append(_Batch(values, pattern))
    return [batch.pattern for batch in _batches]


def leaks_in(texts: dict[str, str]) -> list[str]:
    """Where a registered secret appears in ``texts`` (name -> text); never the secret itself."""
    patterns = _compiled()
    return [where for where, text in texts.items() if any(p.search(text) for p in patterns)]


def record_text(record: logging.LogRecord) -> str:
    text = repr(vars(record))
    if record.exc_info and record.exc_info[1] is not None:
        text += logging.Formatter().formatException(record.exc_info)
    return text


@pytest.fixture(autouse=True)
def no_leaks(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    answers: list[str] = []
    original = lean_http.response_bytes

    def scanned(*args: Any, **kwargs: Any) -> bytes:
        # Every answer a key listener (and the admin listener's connection cap) writes.
        answer = original(*args, **kwargs)
        answers.append(answer.decode("latin-1"))
        return answer

    monkeypatch.setattr(lean_http, "response_bytes", scanned)
    monkeypatch.setattr(lean_listener, "response_bytes", scanned)
    # Capture INFO lines too (audit, rotation, Vault); a test may still choose another level.
    caplog.set_level(logging.INFO)
    yield
    texts = {
        f"log record {i} ({r.name})": record_text(r)
        for i, r in enumerate(caplog.get_records("setup") + caplog.get_records("call"))
    }
    texts.update({f"answer {i}": text for i, text in enumerate(answers)})
    found = leaks_in(texts)
    if found:
        pytest.fail(f"a secret leaked into: {', '.join(found[:5])}", pytrace=False)
