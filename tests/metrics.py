"""Reading a server's `GET /metrics` in tests, with prometheus_client's own parser.

value(text, "livecomments_streams_open")
value(text, "livecomments_delivery_latency_seconds_bucket", le="1.0")
await scrape(server.url, "livecomments_comments_posted_total")
"""

import httpx
from prometheus_client.parser import text_string_to_metric_families


def value(text: str, sample: str, **labels: str) -> float:
    """The value of `sample` with exactly `labels` in Prometheus text; fails if it is absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and found.labels == labels:
                return float(found.value)
    raise AssertionError(f"no sample {sample} {labels or ''} in /metrics")


def total(text: str, sample: str) -> float:
    """The sum of `sample` over all its labels (0 if it is absent)."""
    return sum(
        float(found.value)
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample
    )


async def scrape(base_url: str, sample: str, **labels: str) -> float:
    """`value` of `sample` in the /metrics of the server at `base_url`."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return value((await client.get("/metrics")).text, sample, **labels)
