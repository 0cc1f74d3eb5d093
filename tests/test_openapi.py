"""The OpenAPI description: served, complete (every route and method of the app is in it,
and nothing else), and true (schemathesis fuzzes a live server against it)."""

import re
import uuid

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from livecomments import openapi
from livecomments.app import make_app
from livecomments.config import Config
from store import open_store

# The two live-delivery routes wait by design (a stream never ends; a long-poll waits up to
# a minute), so fuzzing them would only measure timeouts: their bad inputs are covered by
# tests/test_bad_input.py, their behaviour by test_stream.py and test_poll.py.
NOT_FUZZED = r"/(stream|poll)$"


def described_operations() -> set[tuple[str, str]]:
    document = openapi.describe()
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def routed_operations() -> set[tuple[str, str]]:
    """(OpenAPI path, method) for every method each route's handler implements."""
    app = make_app(Config(), open_store("sqlite:///unused.db"), None, None, None, None, None)  # type: ignore[arg-type]
    operations = set()
    for rule in app.default_router.rules[0].target.rules:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        if pattern in ("/()", "/static/(.+)"):
            continue  # the demo page and its files
        path = re.sub(r"\(\[\^/\]\+\)", "{video_id}", pattern)
        handler = rule.target
        for method in handler.SUPPORTED_METHODS:
            implemented = getattr(handler, method.lower(), None)
            if implemented is not None and implemented is not getattr(
                handler.__mro__[-2], method.lower(), None
            ):
                operations.add((path, method))
    return operations


def test_every_route_is_described_and_nothing_else():
    assert routed_operations() == described_operations()


async def test_the_description_is_served(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi.describe()


async def test_a_post_not_declared_json_is_a_described_415(client):
    """The fuzzer sends only what the description allows, so it never sees this refusal."""
    body = b'{"message": "hi"}'
    response = await client.post(
        "/comments/v", content=body, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "415" in openapi.describe()["paths"]["/comments/{video_id}"]["post"]["responses"]


def test_api_matches_its_description(server):
    """Each described operation, with generated requests, answers as described: no 5xx,
    documented statuses and content types, bodies that match their schemas.

    Driven through schemathesis's Python API: its pytest plugin does not run on pytest 9.
    """
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json").exclude(
        path_regex=NOT_FUZZED
    )
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the description itself must load
        operations.append(result.ok())
    labels = {operation.label for operation in operations}
    assert {"POST /comments/{video_id}", "GET /comments/{video_id}", "GET /readyz"} <= labels
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def answers_as_described(case):
            if case.headers and "Idempotency-Key" in case.headers:
                # A fresh key: a key reused for another comment is a documented 422, but
                # the fuzzer would read that as a valid request refused.
                case.headers["Idempotency-Key"] = uuid.uuid4().hex
            case.call_and_validate()

        answers_as_described()
