"""Process logging: stdlib logging to stderr, as text or one JSON object a line.

`PARLEY_LOG_FORMAT=text|json` (default text) and `PARLEY_LOG_LEVEL` (default
WARNING; INFO adds one line per HTTP request, logger `parley.http`). Every line
written while a request runs carries its id (`request_id`, the X-Request-Id the
response gave and the `correlation_id` of the events it wrote:
service.http.request_id). Applied by `parley` itself and again by each API worker
process (uvicorn starts those afresh); uvicorn's own loggers propagate here, so
its lines take the same format. The stdlib and a formatter suffice: no structlog.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import msgspec

FORMATS = ("text", "json")

# The attributes every LogRecord has: anything else on a record came as `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "request_id"}
_encoder = msgspec.json.Encoder(enc_hook=str)  # an `extra=` value JSON has no form for: its str()


class InvalidLogSetting(ValueError):
    """PARLEY_LOG_FORMAT or PARLEY_LOG_LEVEL names nothing known."""


def _request_id() -> str | None:
    from service.http.request_id import current

    return current.get()


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or None) on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request_id when
    within a request, the record's `extra=` fields, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return _encoder.encode(line).decode()


class TextFormatter(logging.Formatter):
    """`LEVEL:logger:message`, as before, with ` request_id=…` within a request."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s:%(name)s:%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} request_id={request_id}" if request_id is not None else text


def configure(environ: Mapping[str, str] | None = None) -> None:
    """Root logging from the environment (again on each call: one handler of ours).

    Raises InvalidLogSetting for an unknown format or level. Where the root logger
    already has a handler that is not ours (a test runner's capture, a program
    embedding Parley), its logging is left alone, as logging.basicConfig would."""
    env = os.environ if environ is None else environ
    form = (env.get("PARLEY_LOG_FORMAT") or "text").strip().lower()
    if form not in FORMATS:
        raise InvalidLogSetting(f"PARLEY_LOG_FORMAT must be text or json, not {form!r}")
    level_name = (env.get("PARLEY_LOG_LEVEL") or "WARNING").strip().upper()
    level = logging.getLevelNamesMapping().get(level_name)
    if level is None:
        raise InvalidLogSetting(f"PARLEY_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level_name!r}")
    root = logging.getLogger()
    if any(h.get_name() != "parley" for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("parley")
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    for old in [h for h in root.handlers if h.get_name() == "parley"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
