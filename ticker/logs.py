"""Logging: one line per state change, as text for people or JSON for log shippers.

httpx logs every request URL at INFO; it (and httpcore) is kept at WARNING so
a key in a URL could never reach the logs, and routine requests stay quiet.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class OncePerDay(logging.Filter):
    """Per-coin data problems repeat every round: a record marked `extra={"once": key}` passes once a day.

    Repeats pass only while DEBUG is on, so a coin whose provider keeps sending a bad price is one
    WARNING line a day, not one per round.
    """

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._monotonic = monotonic
        self._seen: dict[object, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = getattr(record, "once", None)
        if key is None:
            return True
        now = self._monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < 86400:
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        self._seen[key] = now
        return True


def setup_logging(log_format: str, *, level: int | None = None) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OncePerDay())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("TICKER_LOG_LEVEL", "INFO").upper())
    # httpx logs every request URL at INFO; keep it (and httpcore) quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
