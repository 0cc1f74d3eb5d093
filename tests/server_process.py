"""A real livecomments server in a child process, on a free loopback port.

    with ServerProcess(store_url) as server:
        httpx.get(server.url + "/healthz")

The server is started exactly as a user starts it (`python server.py`), with
`--port 0`; the port is read from its "listening on" log line.
"""

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every test's client is 127.0.0.1, so the per-address limits that are on by default would
# count the whole suite as one client. Servers here run without them; a test of a limit
# passes its own flags after these (the last flag wins), or `client_limits=()` for the
# defaults.
NO_CLIENT_LIMITS = ("--post-rate", "0", "--max-streams-per-ip", "0")
_LISTENING = re.compile(r"listening on http://([^/]+):(\d+)/")


class ServerProcess:
    def __init__(
        self,
        store_url: str,
        *args: str,
        bus_url: str = "memory://",
        client_limits: tuple[str, ...] = NO_CLIENT_LIMITS,
        file_limit: int | None = None,
        root: Path = ROOT,
    ) -> None:
        """`file_limit`: the process's open files, soft and hard, as `ulimit -n` sets them;
        `root`: the checkout whose server.py runs."""
        self.file_limit = file_limit
        self.root = root
        self.output_bytes = 0  # all the output so far; `output` keeps its last lines
        self.command = [
            sys.executable,
            "server.py",
            "--port",
            "0",
            "--store",
            store_url,
            "--bus",
            bus_url,
            *client_limits,
            *args,
        ]
        self.output: deque[str] = deque(maxlen=2000)
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.host = ""
        self.port = 0

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        self.process = subprocess.Popen(
            self.command,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=None if self.file_limit is None else self._limit_files,
        )
        listening = threading.Event()
        self._reader = threading.Thread(target=self._read_output, args=(listening,), daemon=True)
        self._reader.start()
        if not listening.wait(timeout):
            self.kill()
            raise RuntimeError("server did not start:\n" + self.log())
        return self

    def _limit_files(self) -> None:
        assert self.file_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.file_limit, self.file_limit))

    def _read_output(self, listening: threading.Event) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.output_bytes += len(line)
            match = _LISTENING.search(line)
            if match and not listening.is_set():
                self.host, self.port = match.group(1), int(match.group(2))
                self.url = f"http://{self.host}:{self.port}"
                listening.set()

    def log(self) -> str:
        return "".join(self.output)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        kilobytes = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert kilobytes is not None
        return int(kilobytes.group(1)) * 1024

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._reap()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reap()

    def _reap(self) -> None:
        """After exit: let the reader thread see end of output, then close the pipe."""
        if self.process is not None and self.process.stdout is not None:
            self._reader.join(10)
            self.process.stdout.close()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate()


def wait_until(condition, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll `condition()` until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
