"""deploy/nginx.conf in front of real instances: whose address a request carries
(issue 10).

Each test runs a real nginx configured from deploy/nginx.conf (tests/nginx_server.py)
in front of real server processes.
"""

from pathlib import Path

import httpx

from tests.nginx_server import Nginx
from tests.server_process import ServerProcess


def nginx_folder(parent: Path) -> Path:
    folder = parent / "nginx"
    folder.mkdir()
    return folder


def sqlite_url(folder: Path, name: str = "comments.db") -> str:
    return f"sqlite:///{folder / name}"


# ---------------------------------------------------------------------------
# The client's address is the one nginx saw


async def test_a_client_naming_other_addresses_is_counted_as_itself(tmp_path, video):
    limited = ("--post-rate", "1", "--post-burst", "1", "--trust-proxy", "127.0.0.1")
    with (
        ServerProcess(sqlite_url(tmp_path), *limited) as instance,
        Nginx(nginx_folder(tmp_path), [instance.port]) as nginx,
    ):
        async with httpx.AsyncClient(base_url=nginx.url, timeout=10) as forger:
            statuses = []
            for i in range(3):
                forged = {"X-Real-IP": f"10.0.0.{i}", "X-Forwarded-For": f"10.0.0.{i}"}
                response = await forger.post(
                    f"/comments/{video}", json={"message": f"forged {i}"}, headers=forged
                )
                statuses.append(response.status_code)
        assert statuses == [201, 429, 429]
        # nginx names the address it saw: a client on another one has its own allowance
        other_address = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(
            base_url=nginx.url, transport=other_address, timeout=10
        ) as other:
            response = await other.post(f"/comments/{video}", json={"message": "other"})
            assert response.status_code == 201, response.text
