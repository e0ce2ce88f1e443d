"""One log format for every logger of the process, uvicorn's included: readable text, or JSON lines.

`CONNHUB_LOG_FORMAT=json` writes one JSON object a line (python-json-logger with orjson); the default
is text for a person at a terminal. Lines logged while a request is served carry its request id.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from typing import Any

from connhub import __version__

# The id of the request being served, set by the access middleware (connhub.api.access) and read
# here and by the error bodies: a context variable reaches everything the request's task calls.
request_id: ContextVar[str | None] = ContextVar("connhub_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ("levelname", "name", "message")
JSON_RENAMES = {"levelname": "level", "name": "logger"}
UVICORN_STARTED = "Uvicorn running on "


class RequestIdField(logging.Filter):
    """Adds `requestId` to every record logged while a request is served (JSON lines show it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        if current is not None and not hasattr(record, "requestId"):
            record.requestId = current
        return True


class UvicornLines(logging.Filter):
    """uvicorn's server lines under the name `uvicorn` (its `uvicorn.error` logger logs no errors
    only), and its "Uvicorn running on http://..." (logged once its sockets are bound) in our words:
    `connhub X listening on http://...` appears only when the port really listens. Any other wording
    of a later uvicorn passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = "uvicorn"
        record.__dict__.pop("color_message", None)  # the same words with terminal colours
        if isinstance(record.msg, str) and record.msg.startswith(UVICORN_STARTED):
            rest = record.msg.removeprefix(UVICORN_STARTED).replace(" (Press CTRL+C to quit)", "")
            record.msg = f"connhub {__version__} listening on {rest}"
        return True


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of every line: `json` (one object a line) or `text`."""
    if log_format == "json":
        from pythonjsonlogger.orjson import OrjsonFormatter

        # Extra fields of a record (the access line's method, route...) become keys of their own.
        return OrjsonFormatter(list(JSON_FIELDS), rename_fields=JSON_RENAMES, timestamp="time")  # ISO 8601, UTC
    return logging.Formatter(TEXT_FORMAT)


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a connhub process; uvicorn applies it in every worker."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdField},
            "uvicorn": {"()": UvicornLines},
        },
        "formatters": {"connhub": {"()": formatter, "log_format": log_format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "connhub",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers bring handlers and formats of their own: these replace them.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True, "filters": ["uvicorn"]},
            # connhub writes the one access line of a request (connhub.access); uvicorn's is off.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure(level: str, log_format: str) -> None:
    logging.config.dictConfig(logging_config(level, log_format))
    lean_records()


def lean_records() -> None:
    """No line shows the thread or the process, yet each record asks for them (a getpid system call
    among them): a third of an access line's cost. These are the switches logging provides for it."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
