"""The demo page and its assets, served from static/ (`/` and `/static/...`).

Tornado's static file handler, with JSON errors like every other route.
"""

from tornado.web import StaticFileHandler

from handlers.base import ApiHandler


class DemoFileHandler(ApiHandler, StaticFileHandler):
    """Serves static/; `ApiHandler` comes first so its JSON errors win."""
