"""What counts as valid input, and the limits that say so.

Owns every input rule: the video id pattern, the media type of a post, message
and author limits and what their text may hold, the idempotency key format,
cursors, page limits and long-poll timeouts. Each rule raises `ApiError` with a
stable code (400; 415 for a post that is not declared JSON), so a bad request is
refused before it reaches the store. Never touches HTTP objects, the store or
the bus.

Text that would show as something it is not is refused, never rewritten, so a
comment is stored and shown as its author sent it:
- a message with no visible character (only whitespace, format characters of
  category Cf such as U+200B or U+FEFF, and fillers such as U+3164) is empty; an
  author like that is refused too (an empty author still means anonymous);
- bidirectional embedding, override and isolate controls (U+202A-U+202E,
  U+2066-U+2069) are refused in authors and in messages alike: they reverse or
  re-order what follows them, and right-to-left text displays right without them
  (the marks LRM, RLM and ALM stay allowed). Refusing, rather than stripping or
  closing them, tells the sender and keeps the stored text equal to what was
  sent (docs/DESIGN.md);
- at most `MAX_COMBINING_MARKS` combining marks (Mn, Me) in a row, enough for
  Vietnamese, Thai, Devanagari, cantillated Hebrew or Quranic Arabic, not for
  stacked "zalgo" text.

    >>> parse_draft(b'{"message": " hi "}', None)
    Draft(message='hi', author='anonymous', idempotency_key=None)
"""

import json
import re
import unicodedata
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
# Embedding (LRE, RLE), pop (PDF), override (LRO, RLO) and isolate (LRI, RLI, FSI, PDI).
BIDI_CONTROL_CHARS = r"\u202a-\u202e\u2066-\u2069"
# Invisible: Unicode's format characters (category Cf as of Unicode 14, the version of
# Python 3.11; tests/test_content_rules.py fails if Python's differ), and the fillers and
# variation selectors that are ignorable too. Literal characters, not escapes: every regex
# dialect reads those alike.
FORMAT_CHARS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
FILLER_CHARS = (
    "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\u2800\U000e0100-\U000e01ef"
)
INVISIBLE_CHARS = FORMAT_CHARS + FILLER_CHARS
MAX_COMBINING_MARKS = 8  # in a row: cantillated Hebrew and Quranic Arabic use 5 or 6
JSON_MEDIA_TYPE = "application/json"
_MESSAGE_FORBIDDEN = re.compile(f"[{MESSAGE_FORBIDDEN_CHARS}]")
_AUTHOR_FORBIDDEN = re.compile(f"[{AUTHOR_FORBIDDEN_CHARS}]")
_BIDI_CONTROL = re.compile(f"[{BIDI_CONTROL_CHARS}]")
_VISIBLE = re.compile(f"[^\\s{INVISIBLE_CHARS}]")
_COMBINING_MARK_CATEGORIES = ("Mn", "Me")
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
    if not _VISIBLE.search(message):
        raise bad_request("empty_message", "'message' must have a visible character")
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
    if not author:
        return DEFAULT_AUTHOR
    if len(author) > MAX_AUTHOR_CHARS:
        raise bad_request(
            "author_too_long", f"'author' must be at most {MAX_AUTHOR_CHARS} characters"
        )
    _check_text("author", author, _AUTHOR_FORBIDDEN)
    if not _VISIBLE.search(author):
        raise bad_request(
            "invalid_author",
            f"'author' must have a visible character (leave it out to be '{DEFAULT_AUTHOR}')",
        )
    return author


def _check_text(field: str, text: str, forbidden: re.Pattern[str]) -> None:
    if forbidden.search(text):
        raise bad_request(f"invalid_{field}", f"'{field}' contains control characters")
    if text.isascii():
        return  # none of the checks below can fail on ASCII
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape such as "\ud800"
        raise bad_request(f"invalid_{field}", f"'{field}' is not valid Unicode") from None
    if _BIDI_CONTROL.search(text):
        raise bad_request(
            f"invalid_{field}",
            f"'{field}' contains bidirectional embedding, override or isolate controls"
            " (U+202A-U+202E, U+2066-U+2069)",
        )
    _check_combining_marks(field, text)


def _check_combining_marks(field: str, text: str) -> None:
    in_a_row = 0
    for char in text:
        is_mark = unicodedata.category(char) in _COMBINING_MARK_CATEGORIES
        in_a_row = in_a_row + 1 if is_mark else 0
        if in_a_row > MAX_COMBINING_MARKS:
            raise bad_request(
                "too_many_combining_marks",
                f"'{field}' has more than {MAX_COMBINING_MARKS} combining marks on one character",
            )


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
