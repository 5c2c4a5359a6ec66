"""Logging set-up: JSON lines on stdout by default, plain text for humans.

Extra fields passed with ``extra={...}`` become JSON fields. Callers pass names, versions and
fingerprints, never credentials: there is deliberately no "redact by regex" safety net that would
make it look acceptable to log a secret-bearing object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


_SECOND: list[tuple[int, str]] = [(-1, "")]  # the last whole second formatted, and its text


def iso_time(ts: float) -> str:
    """``2026-12-01T16:46:05.123Z``; the seconds part is formatted once per second (every log
    and audit line calls this)."""
    whole = int(ts)
    cached_second, text = _SECOND[0]
    if whole != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _SECOND[0] = (whole, text)
    return f"{text}.{int(ts % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extras = _extras(record)
        audit = extras.pop("audit", None)
        if isinstance(audit, dict):
            doc.update(audit)
        doc.update(extras)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        extras = _extras(record)
        audit = extras.pop("audit", None)
        if isinstance(audit, dict):
            extras = {**audit, **extras}
        # Unset fields (no label, no upstream status...) are left out: this format is for reading.
        pairs = [f"{k}={_text_value(v)}" for k, v in extras.items() if v is not None]
        if pairs:
            line += " " + " ".join(pairs)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    """Bare when unambiguous, JSON-quoted otherwise (spaces, quotes, lists, mappings)."""
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in '"=' for c in value)
        return value if plain else json.dumps(value)
    return json.dumps(value, default=str)


def setup_logging(fmt: str = "json", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would duplicate the audit line without its decision and rule.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
