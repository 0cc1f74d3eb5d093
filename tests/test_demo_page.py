"""The demo page and its files over a real server: bad static paths are answered as
JSON 4xx, and none logs a traceback.
"""

import httpx
import pytest

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
