"""Checks and raw-socket helpers the tests share: a JSON error, a connection read to its end,
a process's CPU time, and room for many client sockets.

    assert_json_error(response, 429, "rate_limited")
    received, seconds = read_until_closed(sock, 5)
"""

import resource
import socket
import time
from pathlib import Path

import httpx


def assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    """`response` is the API's error: `status`, JSON, `{"error": {"code", "message"}}`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str), body
    assert message.strip(), body


def read_until_closed(sock: socket.socket, seconds: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(seconds)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` so far (Linux counts them in 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / 100


def allow_open_files(count: int) -> tuple[int, int]:
    """Let this process open `count` files (up to its hard limit); the limits before."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count)), hard))
    return soft, hard
