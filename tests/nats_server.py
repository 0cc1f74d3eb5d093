"""Real `nats-server` processes on free loopback ports: one server, or a cluster.

    with NatsCluster(3) as cluster:
        bus_url = cluster.url   # nats://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3

A node can be stopped and started again on the same ports, to make the bus
lose messages for real.
"""

import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.ports import free_port, stop_process, wait_until_serving

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class NatsNode:
    def __init__(self, log_dir: Path, name: str, cluster_port: int, routes: list[int]) -> None:
        self.port = free_port()
        self.monitor_port = free_port()
        self.name = name
        self.cluster_port = cluster_port
        self.routes = routes
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        command += ["-m", str(self.monitor_port)]
        if self.routes:
            command += [
                "--cluster_name",
                "livecomments-test",
                "--cluster",
                f"nats://127.0.0.1:{self.cluster_port}",
                "--routes",
                ",".join(f"nats://127.0.0.1:{port}" for port in self.routes),
            ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(self.process, self.port)
        except TimeoutError:
            self.stop()
            raise

    def route_count(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/routez") as answer:
            return int(json.load(answer)["num_routes"])

    def subscriptions(self, subject: str) -> int:
        """How many subscriptions this node has on exactly `subject`."""
        url = f"http://127.0.0.1:{self.monitor_port}/subsz?subs=1&limit=10000"
        with urllib.request.urlopen(url) as answer:
            listed = json.load(answer).get("subscriptions_list") or []
        return sum(1 for sub in listed if sub["subject"] == subject)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self.process.pid}/stat")
        deadline = time.monotonic() + 5
        while stat.read_text().rpartition(")")[2].split()[0] != "T":  # stopped
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server {self.name} did not stop")
            time.sleep(0.001)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class NatsCluster:
    """`size` nodes routed to each other (a single node has no cluster port)."""

    def __init__(self, log_dir: Path, size: int = 1) -> None:
        self.log_dir = log_dir
        self.size = size
        self.nodes = self._plan()

    def _plan(self) -> list[NatsNode]:
        """Nodes on ports free right now (each picked port may be taken before it is bound)."""
        cluster_ports = [free_port() for _ in range(self.size)] if self.size > 1 else [0]
        return [
            NatsNode(
                self.log_dir,
                f"n{index}",
                cluster_ports[index],
                [port for port in cluster_ports if port != cluster_ports[index]],
            )
            for index in range(self.size)
        ]

    @property
    def url(self) -> str:
        return "nats://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def node_url(self, index: int) -> str:
        return f"nats://127.0.0.1:{self.nodes[index].port}"

    def __enter__(self) -> "NatsCluster":
        """Start every node; a start that lost a port race is tried again on fresh ports."""
        for attempt in range(3):
            try:
                for node in self.nodes:
                    node.start()
                self.wait_for_routes()
                return self
            except TimeoutError:
                self.__exit__()
                if attempt == 2:
                    raise
                self.nodes = self._plan()
        raise AssertionError("unreachable")

    def wait_for_routes(self, timeout: float = 10.0) -> None:
        """Wait until every running node routes to every other running node."""
        running = [node for node in self.nodes if node.process is not None]
        deadline = time.monotonic() + timeout
        while any(node.route_count() < len(running) - 1 for node in running):
            if time.monotonic() > deadline:
                raise TimeoutError("NATS routes did not form")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.stop()
