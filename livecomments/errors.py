"""The one error type that reaches a client: a status, a stable code, a message.

Anything raised as `ApiError` is answered as
`{"error": {"code": ..., "message": ...}}` with its status. It must never carry
internal details (paths, SQL, stack traces) in `message`.
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
