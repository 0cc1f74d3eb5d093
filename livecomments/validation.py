"""What counts as valid input, and the limits that say so.

Owns every input rule: the video id pattern, the media type of a post, message
and author limits, the idempotency key format, cursors, page limits and
long-poll timeouts. Each rule raises `ApiError` with a stable code (400; 415
for a post that is not declared JSON), so a bad request is refused before it
reaches the store. Never touches HTTP objects, the store or the bus.

    >>> parse_draft(b'{"message": " hi "}', None)
    Draft(message='hi', author='anonymous', idempotency_key=None)
"""

import json
import re
from typing import Any

from livecomments.comment import Draft
from livecomments.errors import ApiError

VIDEO_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_MESSAGE_CHARS = 500
MAX_AUTHOR_CHARS = 50
DEFAULT_AUTHOR = "anonymous"
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")
MAX_CURSOR = 2**53 - 1  # the largest integer a JavaScript client holds exactly
DEFAULT_PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 200
DEFAULT_POLL_TIMEOUT = 25.0
MAX_POLL_TIMEOUT = 60.0

# Regex character ranges, also published in the OpenAPI description. A message may not
# hold C0 controls other than tab and newline, DEL, or C1 controls; an author name is one
# line, so no controls at all.
MESSAGE_FORBIDDEN_CHARS = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
AUTHOR_FORBIDDEN_CHARS = r"\x00-\x1f\x7f-\x9f"
JSON_MEDIA_TYPE = "application/json"
_MESSAGE_FORBIDDEN = re.compile(f"[{MESSAGE_FORBIDDEN_CHARS}]")
_AUTHOR_FORBIDDEN = re.compile(f"[{AUTHOR_FORBIDDEN_CHARS}]")
_DIGITS = re.compile(r"[0-9]{1,16}")


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def check_video_id(video_id: str) -> str:
    if not VIDEO_ID_PATTERN.fullmatch(video_id):
        raise bad_request(
            "invalid_video_id", "video id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'"
        )
    return video_id


def check_json_media_type(content_type: str | None) -> None:
    """A post's body must be declared `application/json` (any case, parameters allowed).

    A browser posts text/plain, form or multipart bodies cross-site without asking
    first; a JSON one only after a CORS preflight, which this service never grants."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be JSON, sent with Content-Type: {JSON_MEDIA_TYPE}",
        )


def parse_draft(body: bytes, idempotency_key: str | None) -> Draft:
    """Turn a POST body into a `Draft`, or raise `ApiError` saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("invalid_utf8", "request body is not valid UTF-8") from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise bad_request("invalid_json", "request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise bad_request("invalid_json", "request body must be a JSON object")
    return Draft(
        message=_parse_message(document.get("message")),
        author=_parse_author(document.get("author")),
        idempotency_key=parse_idempotency_key(idempotency_key),
    )


def _parse_message(value: Any) -> str:
    if value is None:
        raise bad_request("missing_message", "'message' is required")
    if not isinstance(value, str):
        raise bad_request("invalid_message", "'message' must be a string")
    message = value.strip()
    if not message:
        raise bad_request("empty_message", "'message' must not be empty")
    if len(message) > MAX_MESSAGE_CHARS:
        raise bad_request(
            "message_too_long", f"'message' must be at most {MAX_MESSAGE_CHARS} characters"
        )
    _check_text("message", message, _MESSAGE_FORBIDDEN)
    return message


def _parse_author(value: Any) -> str:
    if value is None:
        return DEFAULT_AUTHOR
    if not isinstance(value, str):
        raise bad_request("invalid_author", "'author' must be a string")
    author = value.strip()
    if len(author) > MAX_AUTHOR_CHARS:
        raise bad_request(
            "author_too_long", f"'author' must be at most {MAX_AUTHOR_CHARS} characters"
        )
    _check_text("author", author, _AUTHOR_FORBIDDEN)
    return author or DEFAULT_AUTHOR


def _check_text(field: str, text: str, forbidden: re.Pattern[str]) -> None:
    if forbidden.search(text):
        raise bad_request(f"invalid_{field}", f"'{field}' contains control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape such as "\ud800"
        raise bad_request(f"invalid_{field}", f"'{field}' is not valid Unicode") from None


def parse_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(value):
        raise bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-128 visible ASCII characters",
        )
    return value


def parse_cursor(name: str, value: str, *, minimum: int = 0) -> int:
    """A `seq` cursor: a decimal integer from `minimum` to `MAX_CURSOR`."""
    if not _DIGITS.fullmatch(value) or not minimum <= int(value) <= MAX_CURSOR:
        raise bad_request(
            "invalid_cursor", f"'{name}' must be an integer from {minimum} to {MAX_CURSOR}"
        )
    return int(value)


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_LIMIT
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE_LIMIT:
        raise bad_request("invalid_limit", f"'limit' must be an integer from 1 to {MAX_PAGE_LIMIT}")
    return int(value)


def parse_poll_timeout(value: str | None) -> float:
    if value is None:
        return DEFAULT_POLL_TIMEOUT
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not 0 <= timeout <= MAX_POLL_TIMEOUT:  # also false for NaN
        raise bad_request(
            "invalid_timeout",
            f"'timeout' must be a number of seconds from 0 to {MAX_POLL_TIMEOUT:g}",
        )
    return timeout
