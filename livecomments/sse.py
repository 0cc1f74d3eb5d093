"""Server-Sent Events framing: the exact bytes a stream writes.

Owns the wire format of `text/event-stream`. A comment's frame is built once
and the same bytes go to every viewer. Never writes to a connection itself.
"""

RETRY_MILLISECONDS = 2000
OPENING = b"retry: %d\n: livecomments stream\n\n" % RETRY_MILLISECONDS
HEARTBEAT = b": heartbeat\n\n"


def comment_frame(seq: int, comment_json: bytes) -> bytes:
    """One `comment` event; JSON escapes line breaks, so `data` is one line."""
    return b"id: %d\nevent: comment\ndata: %s\n\n" % (seq, comment_json)
