"""The SSE load generator: one process holding many viewer connections, cheaply.

Owns opening its share of a scenario's SSE viewers, each on the stream of the
video `bench.spread.Videos` assigns it (all of one video, or one video each, or
a Zipf spread), each bound to a source address in 127.0.0.2.., so ephemeral
ports never run out; counting events on all of them with a byte search per
read (`bench.sse.count_events`, by the server's `bench.sse.StreamFormat`, so
comments only: not Centrifugo's other pushes); fully parsing the "sampled" connections,
spread evenly over its share: end-to-end latency from the stamp in each
message, and holes, duplicates and reordering per publishing lane of their
video; and, given what the publisher got acknowledged per video, how many
comments each viewer missed or got too many of. It uses raw asyncio
protocols on uvloop, because it shares the two cores with the server. A
counting viewer's Python work per read is one call and one byte search, about
0.3 us; a read costs about 6 us of CPU in all on the project's box, 80% of it
the kernel's (recv, epoll), so what a server decides, how many reads its
writes take, is what sets this process's CPU per event.

The runner drives it over stdin/stdout, one JSON object a line:

    {"cmd": "mark", "since_ns": T}  -> {"events": n}   latency counts stamps >= T from now on
                                                       ("clear": false keeps what it counted)
    {"cmd": "report", "acknowledged": {video: {lane: n}}}
                                    -> {"events": ..., "missing": ..., "latency_hist": ...}
    {"cmd": "quit"}                 -> exits

It prints {"ready": connected, "failed": {why: n}} once every connection answered or
30 s passed (why: "closed", or the status; 0 for no answer).
It never sends anything but its GET requests, and only to the loopback address it is given.

    python -m bench.loadgen --port P --path '/comments/{video}/stream' --video-prefix v \
        --videos 5000 --viewers 5000 --first-viewer 2500 --conns 2500 --sample 2500
"""

import argparse
import asyncio
import json
import math
import resource
import socket
import sys
import time
from collections import Counter

from bench.servers import connection_token
from bench.spread import Videos
from bench.sse import (
    FORMATS,
    LINE_START,
    ChunkedBody,
    EventParser,
    LaneChecker,
    Stamp,
    StreamFormat,
    count_events,
    response_head,
)

IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the source port at connect, per destination
HIST_BASE = 1.02  # latency histogram buckets are 2% wide
COMMAND_LIMIT = 1 << 24  # a report command lists each video's acknowledged posts


def bucket_of(latency_ms: float) -> int:
    return int(math.log(max(latency_ms, 0.01)) / math.log(HIST_BASE))


def bucket_value(bucket: int) -> float:
    return float(HIST_BASE ** (bucket + 1))  # upper edge: percentiles err on the slow side


class Viewer(asyncio.Protocol):
    """One SSE connection to one video's stream; counts events, and parses them fully
    when sampled."""

    def __init__(self, video: int, request: bytes, sampled: bool, group: "ViewerGroup") -> None:
        self.video = video
        self.request = request
        self.sampled = sampled
        self.group = group
        self.marker = group.format.marker
        self.events = 0  # counted by marker, or parsed when sampled
        self.counted = 0  # a sampled viewer's count by marker, to check the counter against
        self.carry = LINE_START
        self.head = b""
        self.in_body = False
        self.status = 0
        self.closed = False
        self.chunked: ChunkedBody | None = None
        self.parser = EventParser() if sampled else None
        self.lanes = LaneChecker() if sampled else None
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            self.in_body = True
            self.status, chunked = response_head(head)
            if chunked:
                self.chunked = ChunkedBody()
            if not self.answered.done():
                self.answered.set_result(None)
        self.carry, count = count_events(self.carry, data, self.marker)
        if self.parser is None:
            self.events += count
            return
        self.counted += count
        body = self.chunked.feed(data) if self.chunked is not None else data
        for _, payload in self.parser.feed(body):
            if not self.group.format.is_comment(payload):
                continue
            self.events += 1
            stamp = Stamp.find(payload)
            if stamp is None:
                self.group.unstamped += 1
                continue
            assert self.lanes is not None
            self.lanes.see(stamp)
            if stamp.sent_ns >= self.group.since_ns:
                latency_ms = (time.time_ns() - stamp.sent_ns) / 1e6
                bucket = bucket_of(latency_ms)
                self.group.hist[bucket] = self.group.hist.get(bucket, 0) + 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.answered.done():
            self.answered.set_result(None)


class ViewerGroup:
    """One process's viewers, whose streams are all in `format`."""

    def __init__(self, format: StreamFormat = FORMATS["sse"]) -> None:
        self.format = format
        self.viewers: list[Viewer] = []
        self.since_ns = 1 << 62  # no latency is recorded before the first mark
        self.hist: dict[int, int] = {}
        self.unstamped = 0

    def report(self, acknowledged: dict[int, dict[int, int]]) -> dict[str, object]:
        """Counts so far, against `acknowledged`: per video, per publishing lane, how many
        of its posts the server acknowledged. `missing` and `extra` are summed over the
        viewers, each against its own video's total; the sampled viewers' `holes` include
        those at the end of a lane (acknowledged, never arrived)."""
        expected = {video: sum(lanes.values()) for video, lanes in acknowledged.items()}
        sampled = [v for v in self.viewers if v.sampled]
        missing = extra = tail_holes = 0
        for viewer in self.viewers:
            due = expected.get(viewer.video, 0)
            missing += max(0, due - viewer.events)
            extra += max(0, viewer.events - due)
        for viewer in sampled:
            assert viewer.lanes is not None
            for lane, acked in acknowledged.get(viewer.video, {}).items():
                tail_holes += max(0, acked - viewer.lanes.next_index.get(lane, 0))
        return {
            "events": sum(v.events for v in self.viewers),
            "missing": missing,
            "extra": extra,
            "closed": sum(1 for v in self.viewers if v.closed),
            "latency_hist": {str(k): n for k, n in self.hist.items()},
            "holes": sum(v.lanes.holes for v in sampled if v.lanes) + tail_holes,
            "duplicates": sum(v.lanes.duplicates for v in sampled if v.lanes),
            "reordered": sum(v.lanes.reordered for v in sampled if v.lanes),
            "unstamped": self.unstamped,
            "counter_mismatch": sum(abs(v.counted - v.events) for v in sampled),
        }


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def is_sampled(index: int, conns: int, sample: int) -> bool:
    """Whether viewer `index` of `conns` is one of `sample` spread evenly over them."""
    return index * sample // conns != (index + 1) * sample // conns


async def open_viewers(args: argparse.Namespace, group: ViewerGroup) -> None:
    loop = asyncio.get_running_loop()
    videos = Videos(args.video_prefix, args.videos, args.zipf_s)
    watched = videos.assign(args.viewers)[args.first_viewer : args.first_viewer + args.conns]
    tokens: dict[int, str] = {}  # one per video, when the path asks for one
    for index, video in enumerate(watched):
        path = args.path.replace("{video}", videos.name(video))
        if "{token}" in path:
            if video not in tokens:
                tokens[video] = connection_token(args.token_secret, videos.name(video))
            path = path.replace("{token}", tokens[video])
        request = (
            f"GET {path} HTTP/{group.format.http_version}\r\nHost: {args.host}:{args.port}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        viewer = Viewer(video, request, is_sampled(index, args.conns, args.sample), group)
        group.viewers.append(viewer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((f"127.0.0.{args.first_source + index % args.sources}", 0))
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (args.host, args.port))
        except OSError:
            sock.close()
            viewer.connection_lost(None)  # counted as closed, and as missing what it missed
            continue
        await loop.create_connection(lambda v=viewer: v, sock=sock)  # type: ignore[misc]
        if index % 200 == 199:
            await asyncio.sleep(0)  # let the server keep up with the accepts
    if group.viewers:
        await asyncio.wait([v.answered for v in group.viewers], timeout=30)


async def serve_commands(group: ViewerGroup) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=COMMAND_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "mark":
            group.since_ns = int(command["since_ns"])
            if command.get("clear", True):
                group.hist.clear()
            answer: dict[str, object] = {"events": sum(v.events for v in group.viewers)}
        elif command["cmd"] == "report":
            acknowledged = command.get("acknowledged", {})
            answer = group.report(
                {
                    int(video): {int(lane): n for lane, n in lanes.items()}
                    for video, lanes in acknowledged.items()
                }
            )
        else:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


async def main_async(args: argparse.Namespace) -> None:
    group = ViewerGroup(FORMATS[args.format])
    await open_viewers(args, group)
    ok = sum(1 for v in group.viewers if 200 <= v.status < 300 and not v.closed)
    failed = Counter(
        "closed" if v.closed else str(v.status)  # status 0: no answer yet
        for v in group.viewers
        if v.closed or not 200 <= v.status < 300
    )
    sys.stdout.write(json.dumps({"ready": ok, "failed": failed}) + "\n")
    sys.stdout.flush()
    await serve_commands(group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--path",
        required=True,
        help="stream path; {video} is the video's name, {token} a connection token for it",
    )
    parser.add_argument("--format", choices=FORMATS, default="sse", help="see bench.sse")
    parser.add_argument("--token-secret", default="", help="signs the {token} of --path")
    parser.add_argument("--video-prefix", required=True, help="see bench.spread.Videos")
    parser.add_argument("--videos", type=int, default=1)
    parser.add_argument("--zipf-s", type=float, default=0.0, help="0: viewers spread evenly")
    parser.add_argument("--viewers", type=int, required=True, help="of all load generators")
    parser.add_argument("--first-viewer", type=int, default=0, help="where this share starts")
    parser.add_argument("--conns", type=int, required=True, help="this share's viewers")
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--first-source", type=int, default=2)
    parser.add_argument("--sources", type=int, default=20)
    args = parser.parse_args()
    if not args.host.startswith("127."):
        parser.error("only loopback addresses may be targeted")
    raise_file_limit()
    import uvloop

    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
