"""The demo page in a real browser (conftest's `browser`: Debian's Chromium driven by Playwright).

Screenshots go to test-artifacts/ (git-ignored) for a person to look at.
"""

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests.conftest import post_comment
from tests.server_process import ROOT

ARTIFACTS = ROOT / "test-artifacts"
# Chromium reports a CSP violation to the page as this event (and on its console).
RECORD_POLICY_VIOLATIONS = """
window.policyViolations = [];
document.addEventListener("securitypolicyviolation", (event) =>
  window.policyViolations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""


async def open_page(browser: Browser, server, query: str) -> Page:
    page = await browser.new_page(viewport={"width": 1100, "height": 700})
    await page.goto(f"{server.url}/?{query}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    return page


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def comment_items(page: Page):
    return page.locator("#comments li.comment")


async def test_comment_posted_in_one_page_appears_in_the_other(browser, server, video):
    writer = await open_page(browser, server, f"v={video}")
    reader = await open_page(browser, server, f"v={video}")
    await expect(reader.locator("#status")).to_have_attribute("data-transport", "sse")
    await writer.fill("#author", "Ada")
    await writer.fill("#message", "hello from the other tab")
    await writer.press("#message", "Enter")
    arrived = comment_items(reader).filter(has_text="hello from the other tab")
    await expect(arrived).to_have_count(1)
    await expect(arrived.locator(".author")).to_have_text("Ada")
    await expect(comment_items(writer)).to_have_count(1)  # its own comment, once
    await reader.screenshot(path=screenshot_path("two-pages-sse"))


@pytest.mark.parametrize("setup", ["forced", "no-eventsource"])
async def test_long_poll_fallback_delivers_live(browser, server, client, video, setup):
    page = await browser.new_page()
    if setup == "forced":
        await page.goto(f"{server.url}/?v={video}&transport=poll")
    else:
        await page.add_init_script("delete window.EventSource")
        await page.goto(f"{server.url}/?v={video}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#status")).to_have_attribute("data-transport", "poll")
    for i in range(3):
        await post_comment(client, video, f"polled {i}")
    await expect(comment_items(page)).to_have_count(3)
    assert await comment_items(page).evaluate_all("els => els.map(e => e.dataset.seq)") == [
        "1",
        "2",
        "3",
    ]
    await page.screenshot(path=screenshot_path(f"long-poll-{setup}"))


async def test_history_then_load_older_in_order(browser, server, client, video):
    for i in range(1, 81):
        await client.post(f"/comments/{video}", json={"message": f"old {i}"})
    page = await open_page(browser, server, f"v={video}")
    await expect(comment_items(page)).to_have_count(50)
    await expect(page.locator("#load-older")).to_be_visible()
    await page.evaluate("document.querySelector('#scroller').scrollTop = 0")  # scrolling up loads
    await expect(comment_items(page)).to_have_count(80)
    await expect(page.locator("#load-older")).to_be_hidden()  # nothing older left
    seqs = await comment_items(page).evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    assert seqs == list(range(1, 81))
    await post_comment(client, video, "live after history")
    await expect(comment_items(page)).to_have_count(81)


async def test_markup_in_a_comment_is_shown_as_text(browser, server, client, video):
    page = await open_page(browser, server, f"v={video}")
    markup = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold?</b>'
    await post_comment(client, video, markup, author="<i>mallory</i>")
    item = comment_items(page).first
    await expect(item.locator(".message")).to_have_text(markup)
    await expect(item.locator(".author")).to_have_text("<i>mallory</i>")
    assert await item.locator("img, b, i").count() == 0
    assert await page.evaluate("document.body.dataset.pwned") is None


async def test_post_errors_are_shown(browser, server, video):
    page = await open_page(browser, server, f"v={video}")
    await page.evaluate("document.querySelector('#message').removeAttribute('maxlength')")
    await page.fill("#message", "x" * 501)
    await page.press("#message", "Enter")
    await expect(page.locator("#post-error")).to_contain_text("500")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get(f"/comments/{video}")).json()["comments"] == []


async def test_page_runs_under_its_policy_and_misses_no_file(browser, server, video):
    """Loading the page, its history, its stream and a post break no rule of its CSP, and
    nothing it asks for (its icon included: browsers ask /favicon.ico without one) is 404."""
    page = await browser.new_page()
    console_errors: list[str] = []

    def record_error(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.on("console", record_error)
    await page.add_init_script(RECORD_POLICY_VIOLATIONS)
    await page.goto(f"{server.url}/?v={video}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await page.fill("#message", "under the policy")
    await page.press("#message", "Enter")
    await expect(comment_items(page)).to_have_count(1)
    assert await page.evaluate("window.policyViolations") == []
    assert console_errors == []
    assert "status=404" not in server.log()
