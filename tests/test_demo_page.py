"""The demo page and its files over a real server: what the headers let a browser or a
cache do with them, and bad static paths answered as JSON 4xx.

The page: a CSP that keeps it to its own origin and lets only `--frame-ancestors`
frame it, revalidated on every load. Assets: cached for long only under their
content hash. Every API response: nosniff, a CSP that lets nothing run or frame it,
no Referer. The page links its icon, so a browser asks no /favicon.ico.
"""

import re

import httpx
import pytest
from tornado.web import StaticFileHandler

from tests.server_process import ROOT, ServerProcess

STATIC = {"static_path": str(ROOT / "static")}
TEN_YEARS = f"max-age={StaticFileHandler.CACHE_MAX_AGE}"
API_POLICY = {"default-src": "'none'", "frame-ancestors": "'none'"}
SITE = "https://site.example"
BAD_STATIC_PATHS = {
    "nul-before-extension": "app.js%00.png",
    "nul-alone": "%00",
    "nul-at-end": "app.js%00",
    "name-too-long": "a" * 300,
    "path-too-long": ("b" * 200 + "/") * 25 + "app.js",
    "encoded-dot-dot": "%2e%2e/server.py",
    "encoded-dot-dot-slash": "%2e%2e%2fserver.py",
    "dot-dot-encoded-slash": "..%2fserver.py",
    "encoded-absolute": "%2fetc%2fpasswd",
    "absolute": "/etc/passwd",
    "invalid-percent": "%zz",
    "lone-percent": "%",
    "invalid-utf8": "%ff",
    "truncated-utf8": "%C3%28",
    "missing": "nope.js",
}


def static_url(name: str) -> str:
    """The URL Tornado's `static_url` gives the file: `?v=` its content hash."""
    return StaticFileHandler.make_static_url(STATIC, name)


def content_security_policy(response: httpx.Response) -> dict[str, str]:
    """The response's CSP as directive -> source list."""
    directives = (
        part.strip().split(None, 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    return {name: sources for name, sources in directives}


def assert_refused_as_json(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()["error"]) == {"code", "message"}


@pytest.mark.parametrize("path", BAD_STATIC_PATHS.values(), ids=BAD_STATIC_PATHS.keys())
async def test_bad_static_path_is_a_json_4xx(client, path):
    assert_refused_as_json(await client.get("/static/" + path))


async def test_bad_static_paths_log_no_traceback(server, client):
    for path in BAD_STATIC_PATHS.values():
        await client.get("/static/" + path)
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    "url",
    ["/", "/?v=demo", "/?v=demo&transport=poll", "/static/index.html", static_url("index.html")],
    ids=["root", "video-id", "video-id-and-poll", "by-name", "by-content-hash"],
)
async def test_page_is_revalidated_on_every_load_whatever_its_query(client, url):
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert "expires" not in response.headers


@pytest.mark.parametrize("name", ["app.js", "style.css", "favicon.svg"])
async def test_asset_under_its_content_hash_is_cached_long(client, name):
    response = await client.get(static_url(name))
    assert response.status_code == 200
    assert response.headers["cache-control"] == TEN_YEARS


@pytest.mark.parametrize(
    "query",
    ["", "?v=demo", "?v=", "?v=" + static_url("style.css").split("?v=")[1]],
    ids=["no-version", "video-id", "empty", "another-files-hash"],
)
async def test_asset_not_under_its_content_hash_is_revalidated(client, query):
    response = await client.get("/static/app.js" + query)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"


async def test_page_keeps_to_its_own_origin_and_its_framing_site(client):
    response = await client.get("/")
    assert content_security_policy(response) == {
        "default-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'self'",
    }
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "x-frame-options" not in response.headers  # it cannot say a list of sites


def test_configured_site_may_frame_the_page(tmp_path):
    framing = f"'self' {SITE}"
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", "--frame-ancestors", framing) as server:
        response = httpx.get(server.url + "/")
    assert content_security_policy(response)["frame-ancestors"] == framing


async def test_page_links_its_icon(client):
    page = (await client.get("/")).text
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert link is not None
    icon = await client.get(link.group(1))
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/comments/{video}"),
        ("POST", "/comments/{video}"),
        ("GET", "/comments/{video}/poll?timeout=0"),
        ("GET", "/comments/{video}/stream"),
        ("GET", "/comments/a.b"),
        ("DELETE", "/comments/{video}"),
        ("GET", "/nope"),
        ("GET", "/static/app.js"),
        ("GET", "/static/nope.js"),
    ],
)
async def test_api_response_says_it_is_no_page(client, video, method, path):
    body = {"message": "hi"} if method == "POST" else None
    async with client.stream(method, path.format(video=video), json=body) as response:
        headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert content_security_policy(response) == API_POLICY
    assert headers["referrer-policy"] == "no-referrer"
