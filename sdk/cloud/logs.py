"""Structured logs: one JSON object per line on stderr (journald and log shippers read it as is)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER = "splitsdk.cloud"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """Route the receiver's logger to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger(LOGGER)
    if not any(getattr(h, "_splitsdk", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._splitsdk = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:  # keep a level the embedding program chose
        logger.setLevel(level)
    logger.propagate = False
    return logger


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `name` with key/value fields."""
    logger.log(level, name, extra={"fields": fields})


def now_us() -> int:
    return int(time.time() * 1e6)
