"""Tests of bench.sse, the load generator's byte-level logic: a benchmark whose counter
miscounts would report numbers nobody can trust, so these run with the suite."""

from bench.sse import ChunkedBody, EventParser, LaneChecker, Stamp, count_events

FRAMES = b'id: 1\nevent: comment\ndata: {"m": "t=5 k=0 j=0"}\n\n: heartbeat\n\nid: 2\ndata: x\n\n'


def test_count_events_is_the_same_however_the_bytes_are_split() -> None:
    for size in range(1, len(FRAMES) + 1):
        carry, total = b"", 0
        for start in range(0, len(FRAMES), size):
            carry, count = count_events(carry, FRAMES[start : start + size])
            total += count
        assert total == 2, size


def test_chunked_body_and_parser_across_every_split() -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (FRAMES[:30], FRAMES[30:]))
    body += b"0\r\n\r\n"
    for size in (1, 2, 3, 7, len(body)):
        decoder, parser, events = ChunkedBody(), EventParser(), []
        for start in range(0, len(body), size):
            events += parser.feed(decoder.feed(body[start : start + size]))
        assert events == [(b"1", b'{"m": "t=5 k=0 j=0"}'), (b"2", b"x")]
        assert decoder.ended


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
