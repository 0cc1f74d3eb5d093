"""A raw Server-Sent Events client over a plain asyncio socket.

It speaks just enough HTTP/1.1 (a GET, then a chunked or close-delimited body)
to read a stream byte for byte and parse events as a browser would, and it can
stop reading on purpose to play a slow viewer.
"""

import asyncio
import socket
from dataclasses import dataclass, field


@dataclass
class Event:
    id: str | None
    event: str
    data: str

    @property
    def seq(self) -> int:
        """The `id` of a comment event: its seq."""
        assert self.id is not None, "a comment event carries its seq as id"
        return int(self.id)


@dataclass
class SseStream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]
    chunked: bool
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    _buffer: bytes = b""
    _chunk_left: int = 0
    ended: bool = False

    async def next_event(self, seconds: float = 5.0) -> Event:
        """The next dispatched event; raises EOFError when the stream ends."""
        return await asyncio.wait_for(self._next_event(), seconds)

    async def events(self, count: int, seconds: float = 10.0) -> list[Event]:
        return [await self.next_event(seconds) for _ in range(count)]

    async def read_until_end(self, seconds: float = 10.0) -> list[Event]:
        """Every event until the server ends the stream."""
        events = []
        while True:
            try:
                events.append(await self.next_event(seconds))
            except EOFError:
                return events

    async def _next_event(self) -> Event:
        event_id: str | None = None
        name, data = "message", list[str]()
        while True:
            line = await self._line()
            if line == "":
                if data:
                    return Event(event_id, name, "\n".join(data))
                event_id, name, data = None, "message", []
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "id":
                event_id = value
            elif key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "retry" and value.isdigit():
                self.retry = int(value)

    async def _line(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self._read_body()
            if not chunk:
                raise EOFError("stream ended")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode()

    async def _read_body(self) -> bytes:
        if not self.chunked:
            return await self.reader.read(65536)
        if self.ended:
            return b""
        if self._chunk_left == 0:
            size_line = await self.reader.readline()
            if not size_line:
                return b""
            size = int(size_line.strip().split(b";")[0], 16)
            if size == 0:
                self.ended = True
                return b""
            self._chunk_left = size
        data = await self.reader.read(self._chunk_left)
        if not data:
            return b""
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            await self.reader.readexactly(2)
        return data

    def close(self) -> None:
        self.writer.close()


async def open_stream(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    receive_buffer: int | None = None,
) -> SseStream:
    """GET `path` and read the response head; the body is read as events."""
    sock = None
    if receive_buffer is not None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=receive_buffer)
    else:
        reader, writer = await asyncio.open_connection(host, port)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    status = int(status_line.split()[1])
    response_headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        response_headers[name.strip().lower()] = value.strip()
    chunked = response_headers.get("transfer-encoding", "").lower() == "chunked"
    return SseStream(reader, writer, status, response_headers, chunked)
