"""`GET /metrics` in Prometheus text format, counting what really happened."""

import asyncio

from tests.conftest import post_comment
from tests.metrics import value
from tests.sse_client import open_stream


async def test_streams_posts_deliveries_and_latency_are_counted(server, client, video):
    viewers = [
        await open_stream(server.host, server.port, f"/comments/{video}/stream") for _ in range(2)
    ]
    for i in range(3):
        await post_comment(client, video, f"m{i}")
    for viewer in viewers:
        await viewer.events(3)
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert value(text, "livecomments_streams_open") == 2
    assert value(text, "livecomments_comments_posted_total") == 3
    assert value(text, "livecomments_comments_delivered_total") == 6
    assert value(text, "livecomments_delivery_latency_seconds_count") == 3
    assert value(text, "livecomments_delivery_latency_seconds_bucket", le="1.0") == 3
    for viewer in viewers:
        viewer.close()
    await asyncio.sleep(0.3)
    assert value((await client.get("/metrics")).text, "livecomments_streams_open") == 0
