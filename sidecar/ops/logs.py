"""Logging set-up: JSON lines on stdout by default, plain text for humans.

Extra fields passed with ``extra={...}`` become JSON fields. Callers pass names, versions and
fingerprints, never credentials: there is deliberately no "redact by regex" safety net that would
make it look acceptable to log a secret-bearing object.

The audit line of every request does not go through ``logging`` once :func:`setup_logging` has
run (the process, ``gate-sidecar serve``): it is formatted by :mod:`sidecar.ops.audit` and handed
to the :data:`AUDIT_SINK`, which writes the lines of one event-loop iteration to stdout in one
write. The handler of every other line empties the sink first, so stdout keeps the order in which
lines were made; ``serve`` empties it on SIGTERM, SIGINT and SIGHUP and at exit, so no line is
lost. Without :func:`setup_logging` (the sidecar run in process, the tests' ``caplog``) the audit
line stays a ``logging`` record.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import time
from typing import Any, TextIO

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


_SECOND: list[tuple[int, str]] = [(-1, "")]  # the last whole second formatted, and its text
_MILLI: list[tuple[int, str]] = [(-1, "")]  # the last millisecond formatted, and its text


def iso_time(ts: float) -> str:
    """``2026-12-01T16:46:05.123Z``; the seconds part is formatted once per second and the
    whole text once per millisecond (every log and audit line calls this, several requests
    start in the same millisecond under load). The millisecond is read with one product and
    one conversion: the lookup is what most calls do, so it is kept to the least."""
    milli = int(ts * 1000.0)
    cached_milli, text = _MILLI[0]
    if milli == cached_milli:
        return text
    whole, part = divmod(milli, 1000)
    cached_second, seconds = _SECOND[0]
    if whole != cached_second:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _SECOND[0] = (whole, seconds)
    text = f"{seconds}.{part:03d}Z"
    _MILLI[0] = (milli, text)
    return text


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


class AuditSink:
    """Audit lines bound for stdout, written together once per event-loop iteration."""

    def __init__(self) -> None:
        self.stream: TextIO | None = None  # None: not installed, audit lines go to `logging`
        self.json = True
        self.enabled = True  # False when the log level hides INFO lines
        self._lines: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop a flush is queued on

    def install(self, stream: TextIO | None, *, json_lines: bool, enabled: bool) -> None:
        self.flush()
        self.stream, self.json, self.enabled = stream, json_lines, enabled

    def write(self, line: str) -> None:
        """Queue one whole line (ending in a newline); written at the end of this iteration."""
        self._lines.append(line)
        if self._loop is not None and self._loop.is_running():
            return  # a flush is queued on the running loop (one getpid() call fewer per line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing would flush later
            self.flush()
            return
        if self._loop is not loop:  # also when a flush was queued on a loop that since closed
            self._loop = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._loop = None
        if not self._lines or self.stream is None:
            return
        text = "".join(self._lines)
        self._lines.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed or broken: nowhere left to write to
            pass


AUDIT_SINK = AuditSink()
atexit.register(AUDIT_SINK.flush)


class _OrderedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the queued audit lines before its own line."""

    def emit(self, record: logging.LogRecord) -> None:
        AUDIT_SINK.flush()
        super().emit(record)


def setup_logging(
    fmt: str = "json", level: str = "info", *, audit_sink: bool | None = None
) -> None:
    """Log lines on stdout in ``fmt`` from ``level`` up. ``audit_sink``: audit lines through
    :data:`AUDIT_SINK` (True, what ``serve`` asks) or as ``logging`` records (False); None keeps
    the current choice (a reload changing the format or the level)."""
    handler = _OrderedHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if audit_sink is None:
        audit_sink = AUDIT_SINK.stream is not None
    stream = sys.stdout if audit_sink else None
    AUDIT_SINK.install(stream, json_lines=fmt == "json", enabled=root.isEnabledFor(logging.INFO))
    # aiohttp's access log would duplicate the audit line without its decision and rule.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
