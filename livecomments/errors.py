"""The errors that reach a client, and the core's own errors that handlers answer.

`ApiError` is client-facing: a status, a stable code and a message, answered
as `{"error": {"code": ..., "message": ...}}` (raised by input validation and
by handlers). `ShuttingDown` is the core's: the posting and streaming core
raises it and never speaks HTTP; `handlers/base.py` maps it to a status, as it
maps the store's `StoreUnavailable`. Neither may carry internal details
(paths, SQL, stack traces) in its message.
"""


class ApiError(Exception):
    """A client-facing failure: `status` is the HTTP status, `code` is stable."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, sent as Retry-After


class ShuttingDown(Exception):
    """This process is stopping: it takes no new post, stream or long-poll."""
