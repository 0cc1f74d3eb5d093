"""The rules of livecomments/validation.py on a post's media type, unit-tested without a
server (tests/test_bad_input.py sends the same over sockets)."""

import pytest

from livecomments import validation
from livecomments.errors import ApiError


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
def test_json_is_accepted_in_any_case_with_parameters(content_type):
    validation.check_json_media_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
        "application/json-patch+json",
        "application/jsonx",
        "application/json, text/plain",
        "json",
    ],
)
def test_anything_else_is_415(content_type):
    with pytest.raises(ApiError) as refused:
        validation.check_json_media_type(content_type)
    assert (refused.value.status, refused.value.code) == (415, "unsupported_media_type")
