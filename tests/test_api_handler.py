"""`ApiHandler.clear` replaces Tornado's `clear` (to format `Date` once a second):
it must still reset everything Tornado's resets, on whatever Tornado is installed."""

import time
from email.utils import parsedate_to_datetime
from unittest.mock import Mock

from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.web import Application, RequestHandler

from handlers.base import JSON_TYPE, ApiHandler


def fresh(handler_class: type[RequestHandler]) -> RequestHandler:
    start = RequestStartLine("GET", "/", "HTTP/1.1")
    headers = HTTPHeaders({"Host": "127.0.0.1"})
    request = HTTPServerRequest(start_line=start, headers=headers, connection=Mock())
    return handler_class(Application(), request)


def test_clear_resets_the_same_state_as_tornados_clear():
    tornados, ours = fresh(RequestHandler), fresh(ApiHandler)
    assert vars(ours).keys() == vars(tornados).keys()
    security = {"X-Content-Type-Options", "Content-Security-Policy", "Referrer-Policy"}
    assert set(ours._headers) == set(tornados._headers) | security
    sent = parsedate_to_datetime(ours._headers["Date"]).timestamp()
    assert abs(sent - time.time()) < 2
    assert ours._headers["Content-Type"] == JSON_TYPE


def test_clear_undoes_what_a_failed_response_had_set():
    handler = fresh(ApiHandler)
    handler.set_status(503)
    handler.set_header("Retry-After", "1")
    handler.write(b"partial")
    handler.clear()
    assert handler.get_status() == 200
    assert "Retry-After" not in handler._headers
    assert handler._write_buffer == []
