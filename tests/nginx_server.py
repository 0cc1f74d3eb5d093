"""A real nginx in front of test instances, configured from deploy/nginx.conf.

The deployment file is used as it is but for its ports: the upstream servers
and the listen port are replaced by the test's. nginx runs in the foreground
with every path (pid, logs, temp files) in a test folder.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.ports import free_port, stop_process, wait_until_serving
from tests.server_process import ROOT

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"


def render_site(upstream_ports: list[int], listen_port: int) -> str:
    """deploy/nginx.conf with the test's ports."""
    site = DEPLOY_CONF.read_text()
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in upstream_ports
    )
    site, replaced = re.subn(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, site)
    assert replaced == 1, "deploy/nginx.conf must list its upstream servers together"
    site, replaced = re.subn(r"listen \d+;", f"listen 127.0.0.1:{listen_port};", site)
    assert replaced == 1, "deploy/nginx.conf must have one listen line"
    return site


class Nginx:
    def __init__(self, folder: Path, upstream_ports: list[int]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (folder / "site.conf").write_text(render_site(upstream_ports, self.port))
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {kind}_temp_path {folder}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"{user}worker_processes 1;\n"
            f"pid {folder}/nginx.pid;\n"
            f"error_log {folder}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{\n    access_log {folder}/access.log;\n{temp}"
            f"    include {folder}/site.conf;\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Nginx":
        command = [
            NGINX,
            "-p",
            str(self.folder),
            "-c",
            str(self.folder / "nginx.conf"),
            "-g",
            "daemon off;",
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until_serving(self.process, self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)
