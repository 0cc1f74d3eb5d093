"""The OpenAPI 3 description of the HTTP API, served at `GET /openapi.json`.

Owns the published contract: every route, parameter, body and response. Limits
come from livecomments/validation.py, so the description cannot drift from what
the handlers enforce (the one rule only said in words is the limit on combining
marks in a row); tests/test_openapi.py checks that every route of the app is
described and fuzzes the API against this description with schemathesis.
"""

from functools import cache
from typing import Any

from livecomments import validation
from livecomments.comment import encode_json

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _visible(excluded: str) -> str:
    """One character that is allowed and shows: not whitespace, not invisible."""
    return f"[^\\s{excluded}{validation.INVISIBLE_CHARS}]"


def _cursor(name: str, where: str, description: str, minimum: int = 0) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": minimum, "maximum": validation.MAX_CURSOR}
    return {
        "name": name,
        "in": where,
        "required": False,
        "schema": schema,
        "description": description,
    }


MESSAGE_EXCLUDED = validation.MESSAGE_FORBIDDEN_CHARS + validation.BIDI_CONTROL_CHARS
MESSAGE_CHAR = f"[^{MESSAGE_EXCLUDED}]"
AUTHOR_EXCLUDED = validation.AUTHOR_FORBIDDEN_CHARS + validation.BIDI_CONTROL_CHARS
AUTHOR_CHAR = f"[^{AUTHOR_EXCLUDED}]"
# The patterns leave out the limit on combining marks in a row (it would take every mark's
# range); the descriptions state it.
TEXT_RULES = (
    "at least one visible character (not only whitespace, format characters such as"
    " U+200B, or fillers); no bidirectional embedding, override or isolate controls;"
    f" at most {validation.MAX_COMBINING_MARKS} combining marks in a row"
)

VIDEO_ID = {
    "name": "video_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{validation.VIDEO_ID_PATTERN.pattern}$"},
}
BAD_REQUEST = _error("invalid input; `error.code` says which")
NOT_FOUND = _error("no such route")
STORE_DOWN = _error(
    "the comment store or the message bus is unavailable, the server is stopping, or it holds"
    " too many connections (`overloaded`, with Retry-After)"
)
TOO_MANY_STREAMS = _error(
    "too many open streams and long-polls from this client address (--max-streams-per-ip)"
)
RATE_LIMITED = {
    **_error("too many requests from this client address"),
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
}

SCHEMAS: dict[str, Any] = {
    "Comment": {
        "type": "object",
        "required": ["video_id", "seq", "author", "message", "created_at"],
        "properties": {
            "video_id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1, "description": "1, 2, 3, ... per video"},
            "author": {"type": "string", "maxLength": validation.MAX_AUTHOR_CHARS},
            "message": {"type": "string", "maxLength": validation.MAX_MESSAGE_CHARS},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "NewComment": {
        "type": "object",
        "required": ["message"],
        "properties": {
            "message": {
                "type": "string",
                "minLength": 1,
                "maxLength": validation.MAX_MESSAGE_CHARS,
                "pattern": f"^{MESSAGE_CHAR}*{_visible(MESSAGE_EXCLUDED)}{MESSAGE_CHAR}*$",
                "description": "trimmed, then not empty; no control characters but newline and"
                f" tab; {TEXT_RULES}",
            },
            "author": {
                "type": "string",
                "maxLength": validation.MAX_AUTHOR_CHARS,
                "pattern": f"^(?:\\s*|{AUTHOR_CHAR}*{_visible(AUTHOR_EXCLUDED)}{AUTHOR_CHAR}*)$",
                "description": f"one line; blank or missing means '{validation.DEFAULT_AUTHOR}';"
                f" otherwise {TEXT_RULES}",
            },
        },
    },
    "Page": {
        "type": "object",
        "required": ["comments", "next_cursor"],
        "properties": {
            "comments": {"type": "array", "items": _ref("Comment")},
            "next_cursor": {"type": ["integer", "null"], "description": "null at the end"},
        },
    },
    "Poll": {
        "type": "object",
        "required": ["comments", "cursor"],
        "properties": {
            "comments": {"type": "array", "items": _ref("Comment")},
            "cursor": {"type": "integer", "description": "the `after` of the next poll"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["ready", "checks"],
        "properties": {
            "ready": {"type": "boolean"},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

PATHS: dict[str, Any] = {
    "/comments/{video_id}": {
        "parameters": [VIDEO_ID],
        "post": {
            "summary": "Post a comment; 201 only after it is committed",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,128}$"},
                    "description": "a retry with the same key returns the first comment",
                }
            ],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("NewComment")}}},
            "responses": {
                "201": _json(_ref("Comment"), "the stored comment (also for a replayed key)"),
                "400": BAD_REQUEST,
                "413": _error("the body is larger than the limit"),
                "415": _error(f"the body is not declared `Content-Type: {JSON}`"),
                "422": _error("the Idempotency-Key was used for a different comment"),
                "429": RATE_LIMITED,
                "503": _error(
                    "the comment store is unavailable, or the server is stopping; the comment"
                    " may have been committed all the same: retry with the same Idempotency-Key"
                ),
            },
        },
        "get": {
            "summary": "A page of history by seq cursor",
            "description": "No cursor: the newest page, newest first. `before`: scrolling "
            "back, newest first. `after`: catching up, oldest first. Both: the comments "
            "between them, oldest first.",
            "parameters": [
                _cursor("before", "query", "comments with a lower seq", minimum=1),
                _cursor("after", "query", "comments with a higher seq"),
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": validation.MAX_PAGE_LIMIT,
                        "default": validation.DEFAULT_PAGE_LIMIT,
                    },
                },
            ],
            "responses": {
                "200": _json(_ref("Page"), "a page"),
                "400": BAD_REQUEST,
                "429": RATE_LIMITED,
                "503": STORE_DOWN,
            },
        },
    },
    "/comments/{video_id}/stream": {
        "get": {
            "summary": "Live comments as Server-Sent Events",
            "description": "Each comment is an event with `id: <seq>`, `event: comment` and "
            "`data: <Comment JSON>`; comment lines are heartbeats. Resumes after "
            "`Last-Event-ID` (or `last_id`) with every missed comment once, in order.",
            "parameters": [
                VIDEO_ID,
                _cursor("last_id", "query", "resume after this seq"),
                _cursor("Last-Event-ID", "header", "resume after this seq (wins over last_id)"),
            ],
            "responses": {
                "200": {
                    "description": "an endless event stream; or, while the server holds too"
                    " many connections, one with only a `retry:` field that then ends, so that"
                    " EventSource comes back later (any other status would end it for good)",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "400": BAD_REQUEST,
                "429": TOO_MANY_STREAMS,
                "503": STORE_DOWN,
            },
        }
    },
    "/comments/{video_id}/poll": {
        "get": {
            "summary": "Long-poll for comments after a cursor",
            "parameters": [
                VIDEO_ID,
                _cursor("after", "query", "comments with a higher seq; default: the newest now"),
                {
                    "name": "timeout",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": validation.MAX_POLL_TIMEOUT,
                        "default": validation.DEFAULT_POLL_TIMEOUT,
                    },
                    "description": "seconds to wait when there is nothing yet",
                },
            ],
            "responses": {
                "200": _json(_ref("Poll"), "comments, or none when the wait timed out"),
                "400": BAD_REQUEST,
                "429": TOO_MANY_STREAMS,
                "503": STORE_DOWN,
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness",
            "responses": {"200": _json({"type": "object"}, "the process serves requests")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: store and bus reachable",
            "responses": {
                "200": _json(_ref("Readiness"), "ready"),
                "503": _json(_ref("Readiness"), "not ready; `checks` says what is down"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics of every worker",
            "responses": {
                "200": {
                    "description": "metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This description",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    },
}


@cache
def document() -> bytes:
    """The description as served: encoded once."""
    return encode_json(describe())


def describe() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "livecomments",
            "version": "1",
            "description": "Live comments for live video: post, watch live, scroll back. Any"
            " request may also be answered, before it is read, with 429 `too_many_connections`"
            " (its address holds too many connections) or 503 `overloaded` (the server holds"
            " too many; a stream URL then gets a 200 stream of only `retry:`), both with"
            " Retry-After, and the connection is closed.",
        },
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
