"""Fault injection against real processes: the guarantees hold while things break.

Each test runs one scenario of tests/faults.py (which injects the fault and counts
what every viewer received) and asserts, first, that the fault really happened,
then the guarantees: every acknowledged comment is in the store, and every viewer
ends with exactly the store's comments, once each, in order.
"""

from tests import faults


def assert_every_viewer_has_the_store(result: faults.FaultResult) -> None:
    assert result.details["store seqs dense"], "the store's seqs have a hole"
    assert result.acknowledged_not_stored == 0, "a 201 for a comment the store does not have"
    assert result.stored_twice == 0, "a comment stored twice"
    assert result.viewers, "no viewers"
    for viewer in result.viewers:
        assert viewer.lost == viewer.duplicated == viewer.out_of_order == viewer.unknown == 0, (
            viewer,
            result,
        )
        assert viewer.delivered == result.stored, (viewer, result)


def assert_retries_store_each_refused_post_once(result: faults.FaultResult) -> None:
    """Retried with its Idempotency-Key, every refused post is stored exactly once: the
    ones the store already had are replayed, the others created."""
    details = result.details
    assert details["retries answered 201"] == result.refused, details
    assert details["retries replayed"] == result.refused_but_stored, result
    assert details["stored twice after the retries"] == 0, details


async def test_kill_9_of_the_serving_instance_behind_nginx(tmp_path, mongo_server):
    result = await faults.kill_instance(tmp_path, mongo_server)
    assert result.details["victim exit"] == -9
    # every viewer was on the victim (nginx hashes the video): each lost its stream
    assert all(n >= 1 for n in result.details["viewers reconnected"]), result
    assert result.acknowledged >= 40, result  # posts went on before and after the kill
    assert_every_viewer_has_the_store(result)
    # a refusal (502 from nginx, a connection error) may hide a committed comment, which
    # viewers then get like any other; retried with its key, it is not stored twice
    assert result.unclean_refusals == 0, result.refusals
    assert_retries_store_each_refused_post_once(result)


async def test_kill_9_of_a_nats_node_loses_nothing(tmp_path, mongo_server):
    result = await faults.kill_nats_node(tmp_path, mongo_server)
    assert result.details["node down"]
    assert result.acknowledged >= 30, result
    assert result.refused == 0, result.refusals  # the bus is only the fast path
    assert_every_viewer_has_the_store(result)


async def test_store_outage_refuses_posts_keeps_streams_and_recovers(tmp_path):
    result = await faults.store_outage(tmp_path)
    details = result.details
    # the store really went away: posts were refused, readiness said so
    assert details["refused while down"] > 0, result
    assert details["readyz 503 while down"], result
    assert details["201 sent and answered while down"] == 0, "a 201 while the store was down"
    assert set(result.refusals) == {"503 store_unavailable"}, result.refusals
    assert result.unclean_refusals == 0
    # open streams stayed up, on the same connection, with heartbeats all along
    assert details["stream connections per viewer"] == [1] * len(result.viewers)
    assert details["viewers reconnected"] == 0
    assert details["heartbeats while down (min)"] >= 10, details  # 0.5 s beats over ~10 s
    # and service came back by itself
    assert details["readyz 200 after"]
    assert_every_viewer_has_the_store(result)
    # a post in flight as FerretDB went away may have been committed with its answer lost
    # (FerretDB commits for a while after SIGTERM); one sent once it was gone cannot be
    assert details["refused, sent once it had stopped, stored"] == 0, details
    assert_retries_store_each_refused_post_once(result)


async def test_sigterm_of_the_serving_instance_ends_streams_cleanly(tmp_path, mongo_server):
    result = await faults.restart_instance(tmp_path, mongo_server)
    details = result.details
    assert details["victim exit code"] == 0
    # every viewer's stream was finished by the server (the chunked body terminated)
    assert details["clean stream ends"] >= len(result.viewers), details
    assert details["broken stream ends"] == 0, details
    assert result.acknowledged >= 60, result
    assert_every_viewer_has_the_store(result)
    # an in-flight post either committed (201) or failed cleanly and is not stored
    assert result.refused_but_stored == 0, result
    assert result.unclean_refusals == 0, result.refusals


async def test_a_thousand_stalled_viewers_are_cut_off_and_memory_stays_bounded(tmp_path):
    result = await faults.slow_viewers(tmp_path, stalled=1000)
    details = result.details
    assert details["stalled streams opened"] == 1000
    assert details["viewers cut off"] >= 950, details
    # frames are shared: a stalled viewer costs its unsent bytes' references, not a write
    # request per frame (which cost ~150 MB here, 1,000 x ~650 B per pending write)
    assert details["RSS peak growth MB"] < 60, details
    assert details["healthy latencies measured"] >= 300, details
    assert details["healthy latency p99 ms"] < 1000, details
    assert result.refused == 0, result.refusals
    assert_every_viewer_has_the_store(result)
