"""The publisher: posts stamped comments at a fixed rate R, into one video or spread over many.

Owns how each server takes a post (`Target`: livecomments' API, nchan's
publisher location, Centrifugo's HTTP API), pacing, which video each message
goes to (`bench.spread.Videos.assign`: message n to the n-th assigned video)
and the post latency. Messages are due at t0 + n/R (open loop); each of
`lanes` keep-alive HTTP/1.1 connections takes the next due message whenever it
is free, and waits for the answer before its next post, so a lane's messages
are committed in the order it sent them (what the viewers' `LaneChecker`
relies on: a stamp's counter counts the lane's messages to that video, so a
viewer of one video sees 0, 1, 2, ... per lane). Post latency runs from the
moment a message was due, not when it was sent, so a server that makes the
publisher fall behind is charged for the wait (no coordinated omission). For
the same reason the stamp's time is when the message was due, so the viewers'
end-to-end latency includes any wait in the publisher too.

    publisher = Publisher(Target.livecomments(port), rate=1000, lanes=16, videos=Videos("v1"))
    await publisher.run(seconds=10)
"""

import asyncio
import json
import time
from dataclasses import dataclass, field

from bench.spread import Videos
from bench.sse import Stamp


@dataclass(frozen=True)
class Target:
    """How to post one message to a server's video."""

    port: int
    path: str  # {video} is the video's name
    body: str  # "livecomments", "nchan" or "centrifugo": see `request`
    headers: bytes = b""  # more header lines, each ending in \r\n

    @classmethod
    def livecomments(cls, port: int) -> "Target":
        return cls(port, "/comments/{video}", "livecomments")

    @classmethod
    def nchan(cls, port: int) -> "Target":
        return cls(port, "/pub?id={video}", "nchan")

    @classmethod
    def centrifugo(cls, port: int, api_key: str) -> "Target":
        """Its HTTP API's publish into the video's channel."""
        return cls(port, "/api/publish", "centrifugo", b"X-API-Key: %s\r\n" % api_key.encode())

    def request(self, video: str, message: str) -> bytes:
        """livecomments takes {"message": ...}; nchan the raw text; Centrifugo
        {"channel": <video>, "data": {"message": ...}}, whose data its viewers get as the
        publication's, inside its push envelope."""
        kind = b"application/json"
        if self.body == "livecomments":
            body = json.dumps({"message": message, "author": "bench"}).encode()
        elif self.body == "centrifugo":
            body = json.dumps({"channel": video, "data": {"message": message}}).encode()
        else:
            body, kind = message.encode(), b"text/plain"
        head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        path = self.path.replace("{video}", video).encode()
        return head % (path, kind, len(body)) + self.headers + b"\r\n" + body


class Lane(asyncio.Protocol):
    """One keep-alive connection: one post at a time; resolves on the whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def post(self, request: bytes) -> "asyncio.Future[int]":
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            length = int(head[at + 15 :].split(b"\r\n", 1)[0])
        elif b"transfer-encoding: chunked" in head:
            if not self.buffer.endswith(b"0\r\n\r\n"):
                return
            length = len(self.buffer) - end - 4
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head.split(b" ", 2)[1])
        self.buffer = self.buffer[end + 4 + length :]
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(0)


@dataclass
class PublishResult:
    due: int = 0  # messages whose time came within the run
    sent: int = 0
    acknowledged: int = 0  # 2xx answers
    failed: int = 0
    elapsed_s: float = 0.0  # from the first message due to the last answer
    # per video index, per lane: the lane's messages to the video up to its last 2xx
    acknowledged_by_video: dict[int, dict[int, int]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)  # only those due after `since`


class Publisher:
    def __init__(self, target: Target, rate: float, lanes: int, videos: Videos) -> None:
        self.target = target
        self.rate = rate
        self.lanes = lanes
        self.videos = videos
        self.result = PublishResult()
        self.measure_since = float("inf")  # monotonic time from which latencies count

    async def run(self, seconds: float) -> PublishResult:
        loop = asyncio.get_running_loop()
        lanes = []
        for _ in range(self.lanes):
            _, lane = await loop.create_connection(Lane, "127.0.0.1", self.target.port)
            lanes.append(lane)
        start, start_ns = time.monotonic(), time.time_ns()
        total = int(seconds * self.rate)
        video_of = self.videos.assign(total)
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def pace() -> None:
            for n in range(total):
                due = start + n / self.rate
                delay = due - time.monotonic()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
                queue.put_nowait(n)
                self.result.due += 1
            for _ in lanes:
                queue.put_nowait(-1)

        async def work(index: int, lane: Lane) -> None:
            sent: dict[int, int] = {}  # per video
            while (n := await queue.get()) >= 0:
                if lane.lost:
                    self.result.failed += 1
                    continue
                due = start + n / self.rate
                video = video_of[n]
                stamp = Stamp(start_ns + int(n * 1e9 / self.rate), index, sent.get(video, 0))
                request = self.target.request(self.videos.name(video), stamp.text())
                status = await lane.post(request)
                sent[video] = stamp.index + 1
                self.result.sent += 1
                if 200 <= status < 300:
                    self.result.acknowledged += 1
                    self.result.acknowledged_by_video.setdefault(video, {})[index] = sent[video]
                else:
                    self.result.failed += 1
                if due >= self.measure_since:
                    self.result.latencies_ms.append((time.monotonic() - due) * 1000)

        try:
            await asyncio.gather(pace(), *(work(i, lane) for i, lane in enumerate(lanes)))
        finally:
            for lane in lanes:
                if lane.transport is not None:
                    lane.transport.close()
        self.result.elapsed_s = time.monotonic() - start
        return self.result
