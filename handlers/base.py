"""What every handler shares: JSON responses and errors, security headers, the client.

Owns the error body `{"error": {"code": ..., "message": ...}}` and the mapping
of failures to statuses: `ApiError` as it says, the core's `ShuttingDown`, the
store's `StoreUnavailable` and the bus's `BusUnavailable` as 503, and
Tornado's own `HTTPError`s (404, 405, ...) by status. Every response of the
API is JSON (the demo page's files are served through `ApiHandler` too, for its
JSON errors) and says it is no page to sniff, run or frame. `prepare` names the
request's client, through a trusted proxy's headers (livecomments/proxies.py);
`admit` counts a stream or long-poll against its client's cap.
"""

import functools
import logging
import time
from http import HTTPStatus
from typing import Any

import tornado
from tornado import httputil
from tornado.web import HTTPError, RequestHandler

from bus import BusUnavailable
from livecomments import metrics
from livecomments.comment import encode_json
from livecomments.errors import ApiError, ShuttingDown
from livecomments.limits import ConnectionCounter
from livecomments.proxies import TrustedProxies
from store import StoreUnavailable

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    500: "internal_error",
    503: "unavailable",
}
JSON_TYPE = "application/json; charset=utf-8"
# A store can fail between committing a post and answering it, so a 503 cannot say
# the post was not stored; its key makes the retry safe (docs/DESIGN.md).
STORE_UNAVAILABLE = (
    "the comment store is unavailable; try again (retry a post with the same "
    "Idempotency-Key: it may have been stored)"
)
SHUTTING_DOWN = "the server is stopping; try again (another instance takes over)"
_SERVER = f"TornadoServer/{tornado.version}"


class ApiHandler(RequestHandler):
    """A handler whose every response, errors included, is JSON."""

    def clear(self) -> None:
        """Tornado's `clear`, but JSON by default and `Date` formatted once a second: per
        request, formatting it cost more than parsing and validating a post. A copy of
        Tornado 6.6's; tests/test_api_handler.py fails if the installed Tornado's resets more.

        Every response, errors included, also says it is no page: a browser must not sniff
        it into HTML, run or load anything from it, frame it, or send a Referer from it."""
        self._headers = httputil.HTTPHeaders(
            {
                "Server": _SERVER,
                "Content-Type": JSON_TYPE,
                "Date": _http_date(int(time.time())),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer",
            }
        )
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = "OK"

    def prepare(self) -> None:
        """Name the request's client: the peer, or whom a trusted proxy forwarded for."""
        proxies: TrustedProxies = self.settings["trusted_proxies"]
        request, headers = self.request, self.request.headers
        forwarded_for, real_ip = headers.get("X-Forwarded-For"), headers.get("X-Real-IP")
        if forwarded_for is None and real_ip is None:
            return
        peer = request.remote_ip or ""
        if proxies.trusts(peer):
            request.remote_ip = proxies.client(peer, forwarded_for, real_ip)
        elif not _warned_of_untrusted_forwarding:
            _warn_of_untrusted_forwarding(peer)

    def send_json(self, status: int, body: bytes) -> None:
        """Finish with `body`, already encoded JSON."""
        self.set_status(status)
        self.finish(body)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ApiError):
            status_code = error.status
        elif isinstance(error, StoreUnavailable):
            metrics.STORE_ERRORS.inc()
            status_code = 503
        elif isinstance(error, (ShuttingDown, BusUnavailable)):
            status_code = 503
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ApiError):
            code, message = error.code, error.message
            if error.retry_after is not None:
                self.set_header("Retry-After", str(error.retry_after))
        elif isinstance(error, StoreUnavailable):
            code, message = "store_unavailable", STORE_UNAVAILABLE
        elif isinstance(error, ShuttingDown):
            code, message = "shutting_down", SHUTTING_DOWN
        elif isinstance(error, BusUnavailable):
            code, message = "bus_unavailable", "the message bus is unavailable; try again"
        else:
            code = _CODES.get(status_code, "error")
            reason = error.reason if isinstance(error, HTTPError) else None
            message = reason or HTTPStatus(status_code).phrase
        if status_code == 405:
            self.set_header("Allow", ", ".join(self._allowed_methods()))
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(encode_json({"error": {"code": code, "message": message}}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            log.info(
                "%s %s -> %d %s", self.request.method, self.request.uri, value.status, value.code
            )
        elif isinstance(value, ShuttingDown):
            log.info("%s %s -> 503 shutting_down", self.request.method, self.request.uri)
        elif isinstance(value, (StoreUnavailable, BusUnavailable)):
            log.warning("%s %s -> 503: %s", self.request.method, self.request.uri, value)
        else:
            super().log_exception(typ, value, tb)

    def _allowed_methods(self) -> list[str]:
        return [
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower()) is not getattr(RequestHandler, method.lower())
        ]


_warned_of_untrusted_forwarding = False


def _warn_of_untrusted_forwarding(peer: str) -> None:
    """Once a process: a proxy not named in --trust-proxy makes every client behind it
    share its address, and its limits."""
    global _warned_of_untrusted_forwarding
    _warned_of_untrusted_forwarding = True
    log.warning(
        "%s sent X-Forwarded-For or X-Real-IP, which are ignored: it is not in --trust-proxy. "
        "If it is your proxy, add it, or every client behind it counts as one address",
        peer,
    )


def admit(per_client: ConnectionCounter, client: str) -> None:
    """Count a stream or long-poll of `client` from now on (the caller closes it in
    `per_client`), or refuse it past the per-address limit."""
    if not per_client.try_open(client):
        raise ApiError(
            429, "too_many_streams", "too many open streams and long-polls from this address"
        )


@functools.lru_cache(maxsize=1)
def _http_date(second: int) -> str:
    return httputil.format_timestamp(second)


class NotFoundHandler(ApiHandler):
    """Every route the service does not have."""

    def prepare(self) -> None:
        super().prepare()
        raise HTTPError(404, reason="no such route")
