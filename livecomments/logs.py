"""Log lines: one line per request at INFO, as text or as JSON.

Owns the log format (`--log-format text|json`) and the request line written
after every response: method, path, status, duration, client address. A JSON
line is one object with fixed keys, for a log pipeline; text is for a terminal.
Never decides anything from logs.
"""

import json
import logging
from typing import Any

from tornado.web import RequestHandler

access_log = logging.getLogger("livecomments.access")

REQUEST_FIELDS = ("method", "path", "status", "duration_ms", "remote")
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key) for key in REQUEST_FIELDS if hasattr(record, key)})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = [f"{key}={getattr(record, key)}" for key in REQUEST_FIELDS if hasattr(record, key)]
        text = super().format(record)
        if not fields:
            return text
        head, newline, trace = text.partition("\n")
        return " ".join([head, *fields]) + newline + trace


def configure(level: str, log_format: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def log_request(handler: RequestHandler) -> None:
    """Tornado's `log_function`: one line per finished request."""
    request = handler.request
    log_line(
        request.method or "",
        request.uri or "",
        handler.get_status(),
        request.request_time(),
        request.remote_ip or "",
    )


def log_line(method: str, path: str, status: int, seconds: float, remote: str) -> None:
    """The line of one request, also of one that left Tornado (a stream, when it ends)."""
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    access_log.log(
        level,
        "request",
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "remote": remote,
        },
    )
