"""Tests of bench.sse and the load generator's Viewer, its byte-level logic: a benchmark
whose counter miscounts would report numbers nobody can trust, so these run with the suite.

The viewers must read a chunked body and a close-delimited one alike, whatever the
server's chunking (a frame or several per chunk, several chunks per write) and however
the bytes are split into reads, and count what each viewer missed against its own video.
The report's arithmetic where a slip would pass unseen (the fan-out-only efficiency; which
ingest configuration a point belongs to; livecomments' ratio to each peer) is checked here
too, and so is how bench.spread shares viewers and posts among many videos. Centrifugo's
streams carry each comment inside a push envelope, among pushes that are not comments, and
its publish API takes the comment inside its own JSON: both are checked against the bytes
Centrifugo v6 sends and takes."""

import asyncio
import json
from typing import Any

import jwt
import pytest

from bench import ab, report
from bench.box import before_and_after, probe
from bench.loadgen import Viewer, ViewerGroup, is_sampled
from bench.publisher import Target
from bench.servers import connection_token
from bench.spread import Videos
from bench.sse import (
    FORMATS,
    LINE_START,
    ChunkedBody,
    EventParser,
    LaneChecker,
    Stamp,
    count_events,
    response_head,
)

FRAMES = b'id: 1\nevent: comment\ndata: {"m": "t=5 k=0 j=0"}\n\n: heartbeat\n\nid: 2\ndata: x\n\n'
STAMPED = [
    b'id: %d\nevent: comment\ndata: {"message": "%s"}\n\n' % (j + 1, Stamp(j, 0, j).text().encode())
    for j in range(4)
]
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
CLOSED_HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream"


def chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)


def test_count_events_is_the_same_however_the_bytes_are_split() -> None:
    for size in range(1, len(FRAMES) + 1):
        carry, total = b"", 0
        for start in range(0, len(FRAMES), size):
            carry, count = count_events(carry, FRAMES[start : start + size])
            total += count
        assert total == 2, size


def test_a_body_that_starts_with_data_counts_its_first_event() -> None:
    assert count_events(LINE_START, b"data: x\n\n")[1] == 1


def test_response_head_reads_status_and_framing() -> None:
    assert response_head(CHUNKED_HEAD) == (200, True)
    assert response_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding:chunked") == (200, True)
    assert response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked") == (200, True)
    assert response_head(CLOSED_HEAD) == (200, False)
    assert response_head(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2") == (429, False)


def test_chunked_body_and_parser_across_every_split() -> None:
    body = chunked([FRAMES[:30], FRAMES[30:]]) + b"0\r\n\r\n"
    for size in (1, 2, 3, 7, len(body)):
        decoder, parser, events = ChunkedBody(), EventParser(), []
        for start in range(0, len(body), size):
            events += parser.feed(decoder.feed(body[start : start + size]))
        assert events == [(b"1", b'{"m": "t=5 k=0 j=0"}'), (b"2", b"x")]
        assert decoder.ended


def splits(stream: bytes) -> list[list[bytes]]:
    """The stream in one read, in reads of 1-7 bytes, and cut in two at every byte."""
    ways = [[stream]]
    ways += [[stream[i : i + n] for i in range(0, len(stream), n)] for n in range(1, 8)]
    ways += [[stream[:at], stream[at:]] for at in range(1, len(stream))]
    return ways


def responses() -> dict[str, bytes]:
    """One response per framing a server may choose, each carrying the STAMPED events."""
    frames = b"".join(STAMPED)
    lines = frames.splitlines(keepends=True)
    return {
        "close-delimited": CLOSED_HEAD + b"\r\n\r\n" + frames,
        "a frame per chunk": CHUNKED_HEAD + b"\r\n\r\n" + chunked(STAMPED),
        "several frames per chunk": CHUNKED_HEAD
        + b"\r\n\r\n"
        + chunked([STAMPED[0] + STAMPED[1], STAMPED[2] + STAMPED[3]]),
        "a line per chunk": CHUNKED_HEAD + b"\r\n\r\n" + chunked(lines),
        "frames cut mid-line": CHUNKED_HEAD
        + b"\r\n\r\n"
        + chunked([frames[:3], frames[3:70], frames[70:]]),
    }


def feed(
    reads: list[bytes], sampled: bool, video: int = 0, format: str = "sse"
) -> tuple[Viewer, ViewerGroup]:
    group = ViewerGroup(FORMATS[format])
    group.since_ns = 0
    viewer = Viewer(video, b"", sampled, group)
    group.viewers.append(viewer)
    for data in reads:
        viewer.data_received(data)
    return viewer, group


def test_viewers_read_every_framing_however_it_is_split_into_reads() -> None:
    async def check() -> None:
        for framing, stream in responses().items():
            for reads in splits(stream):
                counter, _ = feed(reads, sampled=False)
                assert (counter.status, counter.events) == (200, len(STAMPED)), framing
                sampled, group = feed(reads, sampled=True)
                report = group.report({0: {0: len(STAMPED)}})
                assert (sampled.events, sampled.counted) == (len(STAMPED), len(STAMPED)), framing
                assert report["missing"] == report["extra"] == 0, framing
                assert report["holes"] == report["duplicates"] == report["reordered"] == 0
                assert report["counter_mismatch"] == report["unstamped"] == 0
                assert sum(group.hist.values()) == len(STAMPED)

    asyncio.run(check())


def test_chunking_that_cuts_a_data_field_name_shows_as_a_counter_mismatch() -> None:
    frames = b"".join(STAMPED)
    cut = frames.index(b"data:") + 2
    stream = CHUNKED_HEAD + b"\r\n\r\n" + chunked([frames[:cut], frames[cut:]])

    async def check() -> None:
        _, group = feed([stream], sampled=True)
        assert group.report({})["counter_mismatch"] == 1

    asyncio.run(check())


def test_each_viewer_is_checked_against_its_own_videos_acknowledged_posts() -> None:
    stream = CLOSED_HEAD + b"\r\n\r\n" + b"".join(STAMPED)  # lane 0: j = 0, 1, 2, 3

    async def check() -> None:
        group = ViewerGroup()
        for video, sampled in ((0, True), (1, False)):
            viewer = Viewer(video, b"", sampled, group)
            group.viewers.append(viewer)
            viewer.data_received(stream)
        # video 0: lane 0 acknowledged 6 (two never came), lane 1 one; video 1: two
        report = group.report({0: {0: 6, 1: 1}, 1: {0: 2}})
        assert (report["missing"], report["extra"]) == (3, 2)
        assert report["holes"] == 3  # the sampled viewer's lanes' unarrived ends

    asyncio.run(check())


def test_videos_share_items_evenly_or_by_zipf() -> None:
    assert Videos("v", 4).counts(10) == [3, 3, 2, 2]
    assert Videos("v", 4).assign(6) == [0, 1, 2, 3, 0, 1]
    zipf = Videos("z", 1000, zipf_s=1.1)
    counts = zipf.counts(20000)
    assert sum(counts) == 20000
    assert counts == sorted(counts, reverse=True)
    assert counts[0] / counts[9] == pytest.approx(10**1.1, rel=0.01)
    order = zipf.assign(20000)
    assert [order.count(video) for video in range(1000)] == counts
    halves = (order[:10000], order[10000:])  # e.g. two load generators' shares
    first, second = (half.count(0) for half in halves)
    assert abs(first - second) <= 1
    assert (Videos("one").name(0), zipf.name(7)) == ("one", "z7")


def test_sampled_viewers_are_spread_over_a_share() -> None:
    assert [i for i in range(10) if is_sampled(i, 10, 3)] == [3, 6, 9]
    assert all(is_sampled(i, 5, 5) for i in range(5))
    assert not any(is_sampled(i, 5, 0) for i in range(5))


def test_stamp_round_trip() -> None:
    stamp = Stamp(123, 4, 5)
    assert Stamp.find(b'{"message": "' + stamp.text().encode() + b'"}') == stamp
    assert Stamp.find(b"no stamp") is None


def test_lane_checker_counts_holes_duplicates_and_reordering() -> None:
    lanes = LaneChecker()
    for lane, index in [(0, 0), (0, 1), (1, 0), (0, 3), (0, 3), (0, 1)]:
        lanes.see(Stamp(0, lane, index))
    assert (lanes.holes, lanes.duplicates, lanes.reordered) == (1, 1, 1)
    assert lanes.next_index == {0: 4, 1: 1}


def test_fan_out_only_scales_the_baseline_to_the_efficiency_window() -> None:
    hot = {"server": "nchan", "rep": 1, "n": 200, "window_s": 8.0, "cpu_s": 5.0}
    hot |= {"publisher_cpu_s": 1.0, "delivered": 1_000_000}
    ladder = [hot, {**hot, "n": 300}, {**hot, "server": "livecomments", "delivered": 0}]
    base = {"server": "nchan", "rep": 1, "n": 0, "window_s": 4.0, "cpu_s": 0.5}
    base |= {"publisher_cpu_s": 0.6, "post_rate": 1000}
    results = {"plan": {"efficiency_n": 200}, "hot": ladder, "baseline": [base]}
    [row] = report.fan_out_only(results)  # nothing for a step that delivered nothing
    assert row["fan_out_cpu_s"] == 4.0
    assert row["per_million"] == pytest.approx(4.0)
    assert report.fan_out_only({**results, "baseline": []}) == []


def test_ingest_rows_keep_store_and_workers_apart() -> None:
    point = {"store": "sqlite", "rep": 1, "rate": 500, "pass": True}
    ingest = [point, {**point, "workers": 2}, {**point, "store": "mongodb", "workers": 1}]
    grouped = report.ingest_configurations({"plan": {"lc_workers": 1}, "ingest": ingest})
    assert list(grouped) == [
        "SQLite, 1 worker",
        "SQLite, 2 workers + NATS",
        "MongoDB (FerretDB), 1 worker",
    ]


def test_ingest_steps_show_how_fast_the_box_was(tmp_path) -> None:
    step: dict[str, Any] = {
        "store": "sqlite",
        "workers": 2,
        "rep": 1,
        "rate": 5000,
        "post_rate": 4999,
    }
    step |= {"posted": 50000, "post_failed": 0, "p50_ms": 3.0, "p99_ms": 12.0, "max_ms": 18.0}
    step |= {"cpu_s": 11.2, "pass": True}
    probed = step | before_and_after(probe(tmp_path), {"box_cpu_ms": 2.5, "box_fsync_ms": 0.5})
    plan = {"lc_workers": 1, "efficiency_n": 200}
    results: dict[str, Any] = {"plan": plan, "hot": [], "idle": [], "ingest": [probed, step]}
    results |= {"command": "python -m bench.run", "machine": "m", "code": "c", "elapsed_s": 1}
    rows = [line for line in report.summary(results).splitlines() if "| 5000 |" in line]
    cpu_before, fsync_before = probed["box_cpu_ms"][0], probed["box_fsync_ms"][0]
    assert f"| {cpu_before} / 2.5 | {fsync_before} / 0.5 | True |" in rows[0]
    assert rows[1].endswith("| n/a | n/a | True |")  # results of runs before the probe
    assert list(tmp_path.iterdir()) == []  # the probe's file is gone


def test_ab_table_puts_each_rate_of_both_builds_side_by_side() -> None:
    step: dict[str, Any] = {"rate": 5000, "p99_ms": 12.0, "cpu_s": 11.0, "pass": True}
    step |= {"box_cpu_ms": [1.0, 1.1], "build": "this"}
    failed = step | {"build": "base", "p99_ms": 56.0, "pass": False}
    rows = ab.table([step, failed, step | {"p99_ms": 20.0}], "title").splitlines()
    assert rows[4] == "| 5000 | base | 0 of 1 | 56.0 | 11.00 | 1.0 |"
    assert rows[5] == "| 5000 | this | 2 of 2 | 12.0, 20.0 | 11.00 | 1.0 |"


# Shaped as Centrifugo v6.9.1's uni_sse answers a viewer of channel "v1" over HTTP/1.0 (so
# no chunks): a blank line, the connect push, publications, and a ping (an empty push)
CENTRIFUGO_STREAM = (
    b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n\r\n"
    b'data: {"connect":{"client":"c1","version":"6.9.1","subs":{"v1":{}},"ping":25}}\n\n'
    + b"".join(
        b'data: {"channel":"v1","pub":{"data":{"message":"%s"}}}\n\n'
        % Stamp(j, 0, j).text().encode()
        for j in range(3)
    )
    + b"data: {}\n\n"
)


def test_centrifugo_viewers_count_publications_only_however_split() -> None:
    async def check() -> None:
        for reads in splits(CENTRIFUGO_STREAM):
            counter, _ = feed(reads, sampled=False, format="centrifugo")
            assert (counter.status, counter.events) == (200, 3)
            sampled, group = feed(reads, sampled=True, format="centrifugo")
            report = group.report({0: {0: 3}})
            assert (sampled.events, sampled.counted) == (3, 3)
            assert report["missing"] == report["extra"] == report["holes"] == 0
            assert report["counter_mismatch"] == report["unstamped"] == 0
            assert sum(group.hist.values()) == 3  # each stamp found inside its envelope

    asyncio.run(check())


def test_centrifugo_is_asked_for_an_unchunked_stream() -> None:
    assert FORMATS["centrifugo"].http_version == "1.0"
    assert FORMATS["sse"].http_version == "1.1"
    assert not FORMATS["centrifugo"].is_comment(b"{}")
    assert FORMATS["sse"].is_comment(b"{}")


def test_centrifugo_publish_carries_the_stamp_in_its_data() -> None:
    request = Target.centrifugo(8000, "key").request("v1", "t=1 k=2 j=3")
    head, body = request.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /api/publish HTTP/1.1\r\n")
    assert b"\r\nX-API-Key: key" in head
    assert b"Content-Length: %d" % len(body) in head
    assert json.loads(body) == {"channel": "v1", "data": {"message": "t=1 k=2 j=3"}}


def test_connection_token_subscribes_to_the_video_channel() -> None:
    secret = "s" * 64
    claims = jwt.decode(connection_token(secret, "v7"), secret, algorithms=["HS256"])
    assert claims["channels"] == ["v7"]


def test_summary_rows_give_livecomments_ratio_to_each_peer() -> None:
    by_server = {"livecomments": (1.0, 2.0), "nchan": (3.0, 4.0), "centrifugo": (7.0, 8.0)}
    row = report._compare_row("x", by_server, digits=1, ratio_suffix="x")
    assert row == "| x | 1.0 / 2.0 | 3.0 / 4.0 | 7.0 / 8.0 | 0.50x | 0.25x |"
    nan = float("nan")
    older = report._compare_row("x", {**by_server, "centrifugo": (nan, nan)}, ratio_suffix="x")
    assert older.endswith("| n/a / n/a | 0.50x | n/a |")
