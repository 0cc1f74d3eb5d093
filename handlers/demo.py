"""The demo page and its assets, served from static/ (`/` and `/static/...`).

Tornado's static file handler, with JSON errors like every other route. Owns
what the page may do and how long a copy may be kept: the page's
Content-Security-Policy (its own origin only; framed only by the pages that
`--frame-ancestors` names) and Referrer-Policy, and `Cache-Control`. Assets keep
the API's headers (`ApiHandler.clear`): opened by itself (an SVG, say), nothing in
one may run.

The page is revalidated on every load whatever its query (`?v=` is a video id
there). An asset is cached for years only when asked for by its content hash,
Tornado's `static_url` `?v=<hash>`, whose URL changes with the file; under any
other `v` it is revalidated too, so a guessed `v` never pins an old copy.
"""

import datetime

from tornado.web import HTTPError, StaticFileHandler

from handlers.base import ApiHandler

PAGE_TYPE = "text/html"
PAGE_REFERRER_POLICY = "strict-origin-when-cross-origin"


def page_policy(frame_ancestors: str) -> str:
    """The page's CSP: it loads and talks to its own origin only, and only
    `frame_ancestors` (a CSP source list) may frame it."""
    return (
        "default-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
        f"form-action 'self'; frame-ancestors {frame_ancestors}"
    )


class DemoFileHandler(ApiHandler, StaticFileHandler):
    """Serves static/; `ApiHandler` comes first so its JSON errors win."""

    # Called with the route's dict only, which names every argument: the narrower signature
    # than StaticFileHandler's is safe.
    def initialize(  # type: ignore[override]
        self, path: str, default_filename: str, frame_ancestors: str
    ) -> None:
        super().initialize(path, default_filename)
        self._page_policy = page_policy(frame_ancestors)

    def parse_url_path(self, url_path: str) -> str:
        if "\x00" in url_path:
            raise HTTPError(404)  # no file has such a name, and the OS refuses to look one up
        return super().parse_url_path(url_path)

    def set_headers(self) -> None:
        self.set_header("Cache-Control", "no-cache")  # a long max-age replaces it (get_cache_time)
        super().set_headers()

    def set_extra_headers(self, path: str) -> None:
        if self.get_content_type() == PAGE_TYPE:
            self.set_header("Content-Security-Policy", self._page_policy)
            self.set_header("Referrer-Policy", PAGE_REFERRER_POLICY)

    def get_cache_time(self, path: str, modified: datetime.datetime | None, mime_type: str) -> int:
        requested = self.get_query_argument("v", None)
        if mime_type == PAGE_TYPE or requested is None or requested != self._content_hash():
            return 0
        return self.CACHE_MAX_AGE

    def _content_hash(self) -> str | None:
        """The `v` that `static_url` gives this file (computed once per file, then cached)."""
        return self.get_version({"static_path": self.root}, self.path)
