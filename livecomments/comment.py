"""The comment model and its wire encoding.

Owns `Comment` (a stored comment), `Draft` (a validated post not yet stored)
and `Appended` (what the store made of a draft). Encoding to JSON happens here
and nowhere else, so every transport sends the same bytes.
Never touches HTTP, the store or the bus.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated comment that has no `seq` yet."""

    message: str
    author: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Comment:
    """A committed comment: `seq` is dense per video, starting at 1."""

    video_id: str
    seq: int
    author: str
    message: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "seq": self.seq,
            "author": self.author,
            "message": self.message,
            "created_at": self.created_at,
        }

    def to_json(self) -> bytes:
        return encode_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Comment":
        """Rebuild a comment from `to_dict` output; raises ValueError if malformed."""
        try:
            comment = cls(
                video_id=data["video_id"],
                seq=data["seq"],
                author=data["author"],
                message=data["message"],
                created_at=data["created_at"],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a comment: {exc}") from exc
        if not isinstance(comment.seq, int) or comment.seq < 1:
            raise ValueError("comment seq must be a positive integer")
        return comment


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of appending one draft: `created` is False for an idempotent replay."""

    comment: Comment
    created: bool


# One encoder for every call: `json.dumps` with options builds a new encoder each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(value: object) -> bytes:
    """Compact UTF-8 JSON, the one encoding used on every wire."""
    return _ENCODER.encode(value).encode()


def utc_timestamp() -> str:
    """Now, as ISO 8601 UTC with milliseconds, e.g. `2026-11-21T06:09:00.123Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
