"""The rules of livecomments/validation.py on a post's media type and on what its text may
hold, unit-tested without a server (tests/test_bad_input.py sends the same over sockets), and
the published OpenAPI patterns checked against them."""

import json
import re
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecomments import openapi, validation
from livecomments.errors import ApiError

NEW_COMMENT = openapi.SCHEMAS["NewComment"]["properties"]
# Characters each rule is about, and ordinary ones. Left out: the controls that trimming
# removes at the ends but a pattern refuses anywhere (tab and newline in authors, U+001C-
# U+001F, U+0085): the patterns were always stricter there.
MESSAGE_ALPHABET = [
    *"a\u05e9\u064f\U0001f600 \n\t\u00a0\u3000",  # letters, a mark, emoji, spaces
    *"\u200b\u200c\u200d\u2060\ufeff\u00ad\u3164\ufe0f\U000e0041",  # invisible
    *"\u202a\u202e\u2066\u2069\u200e\u200f",  # bidi controls, and marks (allowed)
    *"\u0301\u0336\u20dd",  # combining marks
    *"\x00\x07\x7f\x9f",  # controls
]
AUTHOR_ALPHABET = [char for char in MESSAGE_ALPHABET if char not in "\t\n"]


def parses(document: dict) -> bool:
    try:
        validation.parse_draft(json.dumps(document).encode(), None)
    except ApiError:
        return False
    return True


def refusal(document: dict) -> tuple[int, str]:
    with pytest.raises(ApiError) as refused:
        validation.parse_draft(json.dumps(document).encode(), None)
    return refused.value.status, refused.value.code


def longest_mark_run(text: str) -> int:
    longest = in_a_row = 0
    for char in text:
        in_a_row = in_a_row + 1 if unicodedata.category(char) in ("Mn", "Me") else 0
        longest = max(longest, in_a_row)
    return longest


def expand(ranges: str) -> set[str]:
    """The characters of a regex class body of literal characters and `a-z` ranges."""
    chars: set[str] = set()
    for first, last in re.findall(r"(.)(?:-(.))?", ranges, re.DOTALL):
        chars.update(map(chr, range(ord(first), ord(last or first) + 1)))
    return chars


def test_format_chars_are_unicodes_format_characters():
    """FORMAT_CHARS is written out for speed; this fails when Python's Unicode adds any."""
    every_cf = {
        char for char in map(chr, range(sys.maxunicode + 1)) if unicodedata.category(char) == "Cf"
    }
    assert expand(validation.FORMAT_CHARS) == every_cf


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


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({"message": "\u200b\ufeff"}, "empty_message"),
        ({"message": "hi", "author": "\u2060"}, "invalid_author"),
        ({"message": "a\u202eb"}, "invalid_message"),
        ({"message": "hi", "author": "a\u2066b"}, "invalid_author"),
        ({"message": "a" + "\u0301" * 9}, "too_many_combining_marks"),
        ({"message": "hi", "author": "a" + "\u20dd" * 9}, "too_many_combining_marks"),
    ],
)
def test_each_display_rule_has_its_code(document, code):
    assert refusal(document) == (400, code)


def test_the_mark_limit_counts_marks_in_a_row_not_in_all():
    message = " ".join(["e" + "\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308"] * 20)
    assert (
        validation.parse_draft(json.dumps({"message": message}).encode(), None).message == message
    )


def test_a_blank_author_is_still_anonymous():
    draft = validation.parse_draft(
        json.dumps({"message": "hi", "author": " \u3000 "}).encode(), None
    )
    assert draft.author == validation.DEFAULT_AUTHOR


@settings(max_examples=500, deadline=None)
@given(
    message=st.text(st.sampled_from(MESSAGE_ALPHABET), max_size=12),
    author=st.text(st.sampled_from(AUTHOR_ALPHABET), max_size=12),
)
def test_published_patterns_accept_what_validation_accepts(message, author):
    """Short of the limit on marks in a row, which only the descriptions state."""
    if longest_mark_run(message) <= validation.MAX_COMBINING_MARKS:
        published = re.search(NEW_COMMENT["message"]["pattern"], message) is not None
        assert published == parses({"message": message}), ascii(message)
    if longest_mark_run(author) <= validation.MAX_COMBINING_MARKS:
        published = re.search(NEW_COMMENT["author"]["pattern"], author) is not None
        assert published == parses({"message": "hi", "author": author}), ascii(author)
