"""The servers under test and their peers, each started from a temp folder on loopback.

Owns starting and stopping livecomments (with nats-server when it has more
than one worker, and FerretDB for the MongoDB store), nginx with nchan,
Centrifugo (and the connection tokens its viewers need), and reading CPU
seconds (of a process tree, or of single processes) and RSS from /proc. Every
process a server needs counts as the server: livecomments' CPU includes its
workers, nats-server and FerretDB; nchan's includes nginx's master and worker.
"""

import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jwt

from tests.ports import free_port, stop_process, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
TOOLS = Path(os.environ.get("LIVECOMMENTS_TOOLS", Path.home() / ".cache/livecomments/bin"))
FERRETDB = TOOLS / "ferretdb"  # scripts/install-ferretdb
CENTRIFUGO = TOOLS / "centrifugo"  # scripts/install-centrifugo
NCHAN_CONNECTIONS = 19000  # nginx's worker_connections, unless a scenario needs more
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_pids(roots: list[int]) -> list[int]:
    tree = _children()
    pids, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(tree.get(pid, []))
    return pids


def cpu_seconds(roots: list[int]) -> float:
    """utime + stime of every live process under `roots` (children that exited are not counted)."""
    return process_cpu_seconds(tree_pids(roots))


def process_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each of `pids` alone, without its children."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_bytes(roots: list[int]) -> int:
    total = 0
    for pid in tree_pids(roots):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) * 1024 if match else 0
    return total


class Server:
    """A running server: its port, the roots of its process trees, and how to post/subscribe."""

    name = ""
    config = ""  # how it was started, for the report
    port = 0
    stream_format = "sse"  # how its streams carry comments: a name in bench.sse.FORMATS
    token_secret = ""  # signs the connection token a stream path may ask for (`{token}`)
    processes: list[subprocess.Popen[bytes]]

    def roots(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stream_path(self, video: str) -> str:
        """The path of `video`'s stream; `{token}` in it stands for
        `connection_token(self.token_secret, video)`."""
        raise NotImplementedError

    def close(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)


class LiveComments(Server):
    name = "livecomments"

    def __init__(
        self, folder: Path, workers: int, store: str = "sqlite", root: Path = ROOT
    ) -> None:
        """`root`: the checkout whose server.py runs (another build, for bench.ab)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.processes = []
        self.port = free_port()
        self.workers = workers
        bus = "memory://"
        if workers > 1:
            nats_port = free_port()
            nats = subprocess.Popen(
                [NATS_SERVER, "-a", "127.0.0.1", "-p", str(nats_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.processes.append(nats)
            wait_until_serving(nats, nats_port, 20)
            bus = f"nats://127.0.0.1:{nats_port}"
        store_url = f"sqlite:///{folder}/bench.db"
        if store == "mongodb":
            mongo_port = free_port()
            (folder / "ferret").mkdir(exist_ok=True)
            ferret = subprocess.Popen(
                [
                    str(FERRETDB),
                    "--handler=sqlite",
                    f"--sqlite-url=file:{folder}/ferret/",
                    f"--listen-addr=127.0.0.1:{mongo_port}",
                    "--debug-addr=-",
                    "--telemetry=disable",
                    "--log-level=WARN",
                    f"--state-dir={folder}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.processes.append(ferret)
            wait_until_serving(ferret, mongo_port, 20)
            store_url = f"mongodb://127.0.0.1:{mongo_port}/bench"
        self.config = f"--workers {workers} --bus {bus.split(':')[0]} --store {store}"
        command = [sys.executable, "server.py", "--port", str(self.port), "--store", store_url]
        command += ["--bus", bus, "--workers", str(workers), "--log-level", "WARNING"]
        # The load generators are a few addresses standing for thousands of clients.
        command += ["--post-rate", "0", "--max-streams-per-ip", "0"]
        with (folder / "server.log").open("ab") as log:
            server = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(server)
        wait_until_serving(server, self.port, 20)
        time.sleep(0.5 if workers == 1 else 1.5)  # every worker listening

    def stream_path(self, video: str) -> str:
        return f"/comments/{video}/stream"


NCHAN_CONF = """\
load_module {module};
{user}worker_processes 1;
worker_rlimit_nofile {open_files};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections {connections}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 1000000;
    nchan_shared_memory_size 256M;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /pub {{
            nchan_publisher;
            nchan_channel_id $arg_id;
            nchan_message_buffer_length 20000;
            nchan_message_timeout 300s;
        }}
        location = /sub {{
            nchan_subscriber eventsource;
            nchan_channel_id $arg_id;
            nchan_message_buffer_length 20000;
            nchan_message_timeout 300s;
        }}
    }}
}}
"""


def nchan_conf(folder: Path, port: int, connections: int = NCHAN_CONNECTIONS) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return NCHAN_CONF.format(
        module=NCHAN_MODULE,
        user=user,
        folder=folder,
        port=port,
        connections=connections,
        open_files=min(connections + 1000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
    )


class Nchan(Server):
    name = "nchan"

    def __init__(self, folder: Path, connections: int = NCHAN_CONNECTIONS) -> None:
        """`connections`: nginx's worker_connections, which must exceed the viewers."""
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = "nginx 1 worker, nchan eventsource"
        (folder / "nginx.conf").write_text(nchan_conf(folder, self.port, connections))
        command = [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"]
        nginx = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes = [nginx]
        wait_until_serving(nginx, self.port, 20)

    def stream_path(self, video: str) -> str:
        return f"/sub?id={video}"


def connection_token(secret: str, channel: str) -> str:
    """A Centrifugo connection JWT (HS256) whose `channels` claim subscribes the
    connection to `channel` on the server's side, as a unidirectional client needs."""
    return jwt.encode({"sub": "bench", "channels": [channel]}, secret, algorithm="HS256")


class Centrifugo(Server):
    """Centrifugo v6, one node with the memory engine: viewers on its unidirectional
    SSE transport, each subscribed to its video's channel by its connection token,
    and posts through its HTTP API's publish. Nothing is kept: no history, recovery,
    presence or join/leave messages (all off unless configured)."""

    name = "centrifugo"
    stream_format = "centrifugo"

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token_secret = secrets.token_hex(32)
        self.api_key = secrets.token_hex(16)
        config = {
            "http_server": {"address": "127.0.0.1", "port": self.port},
            "log": {"level": "warn"},
            "engine": {"type": "memory"},
            "client": {"token": {"hmac_secret_key": self.token_secret}},
            "http_api": {"key": self.api_key},
            "uni_sse": {"enabled": True},
            "usage_stats": {"disabled": True},
        }
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        self.config = "Centrifugo 1 node, memory engine, uni_sse, GOMAXPROCS = cores"
        command = [str(CENTRIFUGO), "--config", str(folder / "config.json")]
        with (folder / "centrifugo.log").open("ab") as log:
            server = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        self.processes = [server]
        wait_until_serving(server, self.port, 20)

    def stream_path(self, video: str) -> str:
        # cf_connect={"token":"{token}"}, URL-encoded; a JWT needs no encoding
        return "/connection/uni_sse?cf_connect=%7B%22token%22%3A%22{token}%22%7D"
