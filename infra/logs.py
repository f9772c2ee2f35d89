"""The process's log lines: text or one JSON object per line, kafka-python's chatter kept out."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO-8601), level, logger, message, and exc (the
    traceback as text) when there is one. Lines never span lines: log shippers split on \\n."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(fmt: str = "text") -> None:
    """Root logger at INFO in `fmt`; kafka-python at WARNING: its INFO lines (connections,
    group joins, every coordinator lookup) would outnumber the service's own by far, while its
    warnings and errors (a broker lost, a fenced producer) still show."""
    logging.getLogger("kafka").setLevel(logging.WARNING)
    selector = logging.getLogger("kafka.net.selector")
    if _slow_task not in selector.filters:
        selector.addFilter(_slow_task)
    root = logging.getLogger()
    if root.handlers:  # like logging.basicConfig: a host (pytest, an embedding app) owns them
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _slow_task(record: logging.LogRecord) -> bool:
    """Drop kafka-python 3's "Task ... ran for 0.1s (>0.100s threshold)" warning: a profiling
    hint about its own IO loop, logged many times a minute on a busy machine, about nothing
    an operator can act on. Its other warnings stay."""
    return "threshold). It is blocking the event loop" not in str(record.msg)
