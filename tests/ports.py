"""Loopback ports and the peer processes on them (nats-server, FerretDB, nginx), for the
tests and the benchmark alike."""

import socket
import subprocess
import time


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_until_serving(process: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> None:
    """Return once `port` accepts; TimeoutError if `process` exits or `timeout` passes first
    (then the port may belong to someone else: a port picked free can be taken before use)."""
    deadline = time.monotonic() + timeout
    while not accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise TimeoutError(f"{process.args!r} did not start serving on port {port}")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers past 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
