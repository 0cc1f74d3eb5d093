"""A real MongoDB-protocol server for the tests: FerretDB on its SQLite backend.

    with FerretDB(tmp_path) as server:
        store = open_store(server.url("t_1"))

FerretDB runs on a free loopback port with its data under the given directory.
`stop()` and then `start()` bring the same server back on the same port with
the same data, so a test can take the store away for a while. The binary comes
from scripts/install-ferretdb (`make test` runs it).

The session fixture `mongo_server` shares one server with the whole run; each
test gives its stores a database of its own (`mongo_server.url("t_" + uuid)`).
"""

import gc
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port, stop_process, wait_until_serving

TOOLS = Path(os.environ.get("LIVECOMMENTS_TOOLS", Path.home() / ".cache/livecomments/bin"))
FERRETDB = TOOLS / "ferretdb"


def collect_cancelled_connects() -> None:
    """Collect, without a warning, the socket PyMongo leaks when a client closes mid-connect.

    A client whose server is down keeps trying to connect; `close()` cancels the
    attempt in flight, and PyMongo (4.20) then drops that socket unclosed. Left to
    the garbage collector, its ResourceWarning would fail whichever test runs
    next. Call this once the closed store is no longer referenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class FerretDB:
    def __init__(self, directory: Path) -> None:
        if not os.access(FERRETDB, os.X_OK):
            raise RuntimeError(f"{FERRETDB} is missing: run scripts/install-ferretdb")
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 20.0) -> None:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            str(FERRETDB),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--debug-addr=-",  # no debug HTTP listener, so nothing else needs a port
            "--telemetry=disable",
            "--log-level=WARN",
            f"--state-dir={self.directory}",
        ]
        with (self.directory / "ferretdb.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(self.process, self.port, timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"FerretDB did not start:\n{self.log()}") from None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; the port and the data stay for `start()`."""
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def log(self) -> str:
        return (self.directory / "ferretdb.log").read_text(errors="replace")

    def __enter__(self) -> "FerretDB":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerretDB]:
    """One FerretDB for the whole run; give each test a database name of its own."""
    with FerretDB(tmp_path_factory.mktemp("ferretdb")) as server:
        yield server
