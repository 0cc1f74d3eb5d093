"""Shared fixtures: a real server process per test module, HTTP clients, and Chromium."""

import shutil
import uuid

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.server_process import ServerProcess

pytest_plugins = ["tests.mongo_server"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server on the embedded default (SQLite file + memory bus), one per module."""
    database = tmp_path_factory.mktemp("store") / "comments.db"
    with ServerProcess(f"sqlite:///{database}", "--heartbeat", "0.5") as running:
        yield running


@pytest.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


@pytest.fixture
def video():
    """A fresh video id, so tests sharing a server never see each other's comments."""
    return "v-" + uuid.uuid4().hex[:12]


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser():
    """Debian's Chromium, driven by Playwright."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()


async def post_comment(http: httpx.AsyncClient, video: str, message: str, **fields) -> dict:
    response = await http.post(f"/comments/{video}", json={"message": message, **fields})
    assert response.status_code == 201, response.text
    return response.json()
