"""The connection flood of issue 10, against a build: what one hostile client does to it.

    python -m tests.abuse                 # this checkout
    python -m tests.abuse /tmp/lc-old     # another build (e.g. a `git worktree` of a commit)

Owns the figures of RELIABILITY.md's "Abuse" section. A server of the build in
ROOT runs in its default configuration under `ulimit -n 1024`; 1,010
connections each ask for a stream (`GET /comments/x/stream`), once all from one
address and once from 25. Then, for 5 s, the server's CPU and the growth of its
log, and how /healthz answers a client at another address; and what each of
the 1,010 got: a stream, an answer to come back later (a stream of only
`retry:`), a 429 or 503, or nothing.
"""

import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.http_checks import allow_open_files, cpu_seconds
from tests.server_process import ROOT, ServerProcess

CONNECTIONS = 1010
FILE_LIMIT = 1024
WATCHED_SECONDS = 5


def flood(server: ServerProcess, sources: list[str]) -> list[socket.socket]:
    opened = []
    for n in range(CONNECTIONS):
        try:
            sock = socket.create_connection(
                (server.host, server.port), 2, (sources[n % len(sources)], 0)
            )
            sock.sendall(b"GET /comments/x/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            continue
        opened.append(sock)
    return opened


def answer_kind(sock: socket.socket) -> str:
    sock.settimeout(1.0)
    try:
        start = sock.recv(4096)
    except OSError:
        start = b""
    if b"too many connections" in start:
        return "told to come back"
    for status in (b" 429 ", b" 503 ", b" 200 "):
        if status in start:
            return "stream" if status == b" 200 " else status.strip().decode()
    return "nothing"


def health_from_elsewhere(server: ServerProcess) -> str:
    started = time.monotonic()
    try:
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.3.1")) as other:
            status = other.get(server.url + "/healthz", timeout=5).status_code
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__}) in {time.monotonic() - started:.1f} s"
    return f"{status} in {time.monotonic() - started:.2f} s"


def probe(root: Path, label: str, sources: list[str]) -> str:
    store = f"sqlite:///{tempfile.mkdtemp()}/c.db"
    with ServerProcess(store, client_limits=(), file_limit=FILE_LIMIT, root=root) as server:
        sockets = flood(server, sources)
        time.sleep(1)
        cpu, log = cpu_seconds(server.pid), server.output_bytes
        time.sleep(WATCHED_SECONDS)
        cores = (cpu_seconds(server.pid) - cpu) / WATCHED_SECONDS
        log_rate = (server.output_bytes - log) / WATCHED_SECONDS / 1024
        health = health_from_elsewhere(server)
        kinds = Counter(answer_kind(sock) for sock in sockets)
        for sock in sockets:
            sock.close()
        tracebacks = server.log().count("Traceback")
    answers = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    return f"| {label} | {answers} | {cores:.2f} | {log_rate:.0f} | {tracebacks} | {health} |"


def main() -> None:
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    allow_open_files(8192)
    print(f"{CONNECTIONS} stream requests against {root}, ulimit -n {FILE_LIMIT}\n")
    print(
        "| from | what the connections got | server cores | log KB/s | tracebacks in the"
        " log's last 2,000 lines "
        "| /healthz from another address |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print(probe(root, "one address", ["127.0.0.1"]))
    print(probe(root, "25 addresses", [f"127.0.2.{n}" for n in range(1, 26)]))


if __name__ == "__main__":
    main()
