"""Log output for the commands: readable lines (the default) or JSON lines for log collectors
(``[logging] format = "json"``).  Both pass every message and traceback through the SSIN mask once
more: the call sites mask what they log, and this is the safety net for what slips through."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TextIO

from unified_messaging.identifiers import mask_ssins_in_text

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class MaskedTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_ssins_in_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_ssins_in_text(record.getMessage()),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exception"] = mask_ssins_in_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (standard error) in ``format``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else MaskedTextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    return handler
