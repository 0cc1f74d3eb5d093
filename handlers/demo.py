"""The demo page and its assets, served from static/ (`/` and `/static/...`).

Tornado's static file handler, with JSON errors like every other route: a path
no file can have (a NUL in it) is a 404 like a missing file, not an OS error.
"""

from tornado.web import HTTPError, StaticFileHandler

from handlers.base import ApiHandler


class DemoFileHandler(ApiHandler, StaticFileHandler):
    """Serves static/; `ApiHandler` comes first so its JSON errors win."""

    def parse_url_path(self, url_path: str) -> str:
        if "\x00" in url_path:
            raise HTTPError(404)  # no file has such a name, and the OS refuses to look one up
        return super().parse_url_path(url_path)
