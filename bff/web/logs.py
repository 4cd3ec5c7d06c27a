"""Structured logs (structlog, JSON lines) with a request id (given to each request by
`bff.web.edge`), and a last line of defence that blanks anything shaped like a national
identity number before it is written."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from bff.runtime import tracing

PID_PATTERN = re.compile(r"(?<!\d)\d{11}(?!\d)")
REDACTED = "[redacted-pid]"
REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id() -> str:
    """A random request id that holds no run of exactly eleven digits: about one uuid in
    fifty does, and would look like a national identity number to anyone (or any
    scanner) checking the logs for one."""
    while PID_PATTERN.search(request_id := os.urandom(16).hex()):
        pass
    return request_id


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return PID_PATTERN.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def scrub_pids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no 11-digit number leaves the process through a log line."""
    return {k: _scrub(v) for k, v in event.items()}


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(level: str = "INFO") -> None:
    """One JSON object per line on stdout, from structlog and from standard-library loggers
    (uvicorn, Strawberry) alike; a traceback, when there is one, is a field of its line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_trace_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, scrub_pids, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    scrub_pids, structlog.processors.JSONRenderer()]))
    handler.addFilter(_PidFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in UVICORN_LOGGERS:  # uvicorn's CLI gives these plain-text handlers of their own
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # httpx logs full URLs at INFO, and URLs to providers contain pids: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _add_trace_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the trace id, when the line is written inside a trace."""
    found = tracing.trace_id()
    if found is not None:
        event["trace_id"] = found
    return event


class _PidFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = PID_PATTERN.sub(REDACTED, str(record.msg))
        if record.args:
            record.args = tuple(_scrub(a) if isinstance(a, str) else a for a in record.args) \
                if isinstance(record.args, tuple) else record.args
        return True
