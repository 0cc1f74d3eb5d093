"""Reading SSE streams in the load generator: a cheap event counter and a full parser.

Owns the byte-level rules the benchmark relies on, and nothing else (no I/O):

- `response_head` reads the status and the body's framing from a response
  head: HTTP/1.1 chunked, or anything else read until the connection closes
  (an SSE stream has no Content-Length; an HTTP/1.0 answer has no chunks).
- `count_events` counts events in the raw body bytes by a marker, their
  `\\ndata:` line unless a `StreamFormat` says otherwise, carrying the last
  bytes of a read so a marker split across two reads counts once; a body
  starts with the carry `LINE_START`, so a first line `data:` counts too. It
  reads the raw bytes, chunk framing included, so it is exact for any split
  into reads and for any chunk boundaries but those that cut into the
  marker: a whole frame or several per chunk, frames cut across chunks at
  line ends, several chunks per write, a chunk header in one read and its
  data in the next. Sampled viewers count this way too and compare with the
  full parse (`counter_mismatch` in a loadgen's report), so a server that
  chunks otherwise shows up as that, not as lost comments.
- `ChunkedBody` undoes HTTP/1.1 chunked transfer coding incrementally, and
  `EventParser` turns the decoded bytes into `(id, data)` events as a browser
  would (only `id` and `data` matter here).
- `StreamFormat` says how a server's stream carries comments, by name in
  `FORMATS`: "sse", an SSE event per comment (livecomments, nchan), counted by
  `\\ndata:`; or "centrifugo", an SSE event per Centrifugo push (`{"connect":
  ...}` first, `{}` pings, `{"channel": ..., "pub": {"data": ...}}` per
  publication), where only publications are comments, counted by `"pub":`.
  It also says which HTTP version to ask for: Go's net/http cuts a chunked
  body every 2,048 bytes of a flush, mid-frame (a cut inside a marker would
  miss a comment), so Centrifugo is asked with HTTP/1.0 and answers close-delimited.
- `Stamp` is what the publisher embeds in every message, `t=<ns> k=<lane> j=<n>`:
  the time it was due to be sent (epoch ns), the publishing lane and the
  lane's counter. A lane waits for each post's answer before sending the
  next, so per lane `j` must arrive as 0, 1, 2, ... with no gap, repeat or
  step back. It is found by a regex anywhere in an event's data, so inside
  livecomments' JSON and Centrifugo's push envelope alike.

    >>> carry, n = count_events(b"", b"id: 1\\ndata: x\\n\\nid: 2\\nda")
    >>> count_events(carry, b"ta: y\\n\\n")[1] + n
    2
"""

import json
import re
from dataclasses import dataclass

MARKER = b"\ndata:"
LINE_START = b"\n"  # the carry a body starts with: its first byte begins a line
_STAMP = re.compile(rb"t=(\d+) k=(\d+) j=(\d+)")


def response_head(head: bytes) -> tuple[int, bool]:
    """`(status, chunked)` of a response head (the bytes before its blank line)."""
    status_line, *fields = head.split(b"\r\n")
    chunked = False
    for field in fields:
        name, _, value = field.partition(b":")
        if name.strip().lower() == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")  # chunked is the last coding
    return int(status_line.split(b" ", 2)[1]), chunked


def count_events(carry: bytes, chunk: bytes, marker: bytes = MARKER) -> tuple[bytes, int]:
    """Events whose marker ends in `chunk`; returns the carry for the next call too."""
    data = carry + chunk
    return data[-(len(marker) - 1) :], data.count(marker)


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """How a server's stream carries comments: `marker` occurs once per comment in the
    raw body; with `pushes`, each event is a Centrifugo push and a comment only if it is
    a publication; `http_version` is the one the viewers' requests ask for."""

    marker: bytes = MARKER
    pushes: bool = False
    http_version: str = "1.1"

    def is_comment(self, data: bytes) -> bool:
        """Whether a parsed event's data is a comment (the full parse's count)."""
        return not self.pushes or "pub" in json.loads(data)


FORMATS = {
    "sse": StreamFormat(),
    "centrifugo": StreamFormat(marker=b'"pub":', pushes=True, http_version="1.0"),
}


@dataclass(frozen=True, slots=True)
class Stamp:
    sent_ns: int
    lane: int
    index: int

    def text(self) -> str:
        return f"t={self.sent_ns} k={self.lane} j={self.index}"

    @classmethod
    def find(cls, data: bytes) -> "Stamp | None":
        match = _STAMP.search(data)
        if match is None:
            return None
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)))


class ChunkedBody:
    """Incremental decoder of a chunked body; `feed` returns the payload bytes so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # payload bytes still due in the current chunk
        self._skip_crlf = False
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out: list[bytes] = []
        while not self.ended:
            if self._skip_crlf:
                if len(self._buffer) < 2:
                    break
                self._buffer = self._buffer[2:]
                self._skip_crlf = False
            if self._left:
                taken = self._buffer[: self._left]
                if not taken:
                    break
                out.append(taken)
                self._buffer = self._buffer[len(taken) :]
                self._left -= len(taken)
                if self._left == 0:
                    self._skip_crlf = True
                continue
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self._buffer[:line_end].split(b";")[0], 16)
            self._buffer = self._buffer[line_end + 2 :]
            if size == 0:
                self.ended = True
            self._left = size
        return b"".join(out)


class EventParser:
    """Decoded `text/event-stream` bytes in, `(id, data)` of each dispatched event out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._id: bytes | None = None
        self._data: list[bytes] = []

    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]:
        self._buffer += data
        events: list[tuple[bytes | None, bytes]] = []
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    events.append((self._id, b"\n".join(self._data)))
                self._data = []
                continue
            if line.startswith(b":"):
                continue
            key, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if key == b"id":
                self._id = value
            elif key == b"data":
                self._data.append(value)
        return events


class LaneChecker:
    """Checks that each lane's `j` arrives as 0, 1, 2, ...; counts what went wrong."""

    def __init__(self) -> None:
        self.next_index: dict[int, int] = {}
        self.holes = 0  # messages skipped over (lost, or not yet arrived and never will be)
        self.duplicates = 0
        self.reordered = 0

    def see(self, stamp: Stamp) -> None:
        expected = self.next_index.get(stamp.lane, 0)
        if stamp.index == expected:
            self.next_index[stamp.lane] = expected + 1
        elif stamp.index > expected:
            self.holes += stamp.index - expected
            self.next_index[stamp.lane] = stamp.index + 1
        elif stamp.index == expected - 1:
            self.duplicates += 1
        else:
            self.reordered += 1
