/*
 * livecomments demo page.
 *
 * Owns everything the page does in the browser: reading ?v= (video id) and
 * ?transport=poll from the URL, loading comment history (newest page, then
 * "load older"), live updates over Server-Sent Events with automatic fallback
 * to long-polling, the #status indicator, the post form, and rendering comments.
 *
 * Invariants:
 *  - Comments are rendered as text only (textContent), never as HTML.
 *  - Every seq is rendered at most once and the list is always in seq order,
 *    so history, live updates and our own POST responses may overlap freely.
 *  - `streamCursor` only advances from history and the live transport (never
 *    from our own POST response), so switching transports cannot skip comments.
 */
"use strict";

(() => {
  const VIDEO_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
  const PAGE_SIZE = 50;
  const MESSAGE_LIMIT = 500;
  const POLL_TIMEOUT_S = 25;
  const POLL_PROBE_TIMEOUT_S = 1; // short wait used to confirm the connection quickly
  const POLL_DEADLINE_GRACE_S = 15; // client-side abort beyond the server timeout
  const SSE_MAX_ERRORS = 3;
  const NEAR_EDGE_PX = 80;
  const TIME_REFRESH_MS = 30000;
  const AUTHOR_STORAGE_KEY = "livecomments.author";

  const params = new URLSearchParams(window.location.search);
  const videoId = params.get("v") || "demo";
  const forcePoll = params.get("transport") === "poll";
  const apiBase = `/comments/${encodeURIComponent(videoId)}`;

  const byId = (id) => document.getElementById(id);
  const els = {
    title: byId("video-title"),
    status: byId("status"),
    pageError: byId("page-error"),
    scroller: byId("scroller"),
    loadOlder: byId("load-older"),
    list: byId("comments"),
    notice: byId("notice"),
    newPill: byId("new-pill"),
    form: byId("post-form"),
    fields: byId("post-fields"),
    author: byId("author"),
    message: byId("message"),
    charCount: byId("char-count"),
    send: byId("send"),
    postError: byId("post-error"),
  };

  const rendered = new Map(); // seq -> <li>
  let streamCursor = 0;
  let hasOlder = false;
  let loadingOlder = false;
  let olderFailed = false; // stop auto-loading on scroll until the button is used
  let pendingPost = null; // {author, message, key}: same key when the same post is retried

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  async function requestJson(url, options = {}) {
    let response;
    try {
      response = await fetch(url, { cache: "no-store", ...options });
    } catch (err) {
      throw new ApiError("network_error", "Network error. Check your connection and try again.");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null; // not JSON: fall back to a generic message below
    }
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new ApiError(
        error.code || `http_${response.status}`,
        error.message || `Request failed (HTTP ${response.status}).`,
      );
    }
    return body;
  }

  async function requestJsonWithDeadline(url, deadlineMs) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), deadlineMs);
    try {
      return await requestJson(url, { signal: controller.signal });
    } finally {
      clearTimeout(timer);
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const backoffMs = (failures) => Math.min(1000 * 2 ** failures, 10000);

  function newIdempotencyKey() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // ---------------------------------------------------------------- status

  function setStatus(state, transport) {
    els.status.textContent = state;
    els.status.dataset.state = state;
    els.status.dataset.transport = transport;
    const via = transport === "sse" ? "Server-Sent Events" : "long-polling";
    els.status.title = `${state} (${via})`;
  }

  function showNotice(text) {
    els.notice.textContent = text;
    els.notice.hidden = !text;
  }

  // ---------------------------------------------------------------- rendering

  function authorHue(name) {
    let hash = 0;
    for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    return hash % 360;
  }

  function formatTime(date, now) {
    const seconds = (now - date) / 1000;
    if (seconds < 45) return "now";
    if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
    const clock = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (date.toDateString() === now.toDateString()) return clock;
    return `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}`;
  }

  function updateTime(timeEl, now) {
    const date = new Date(timeEl.dateTime);
    if (Number.isNaN(date.getTime())) return;
    timeEl.textContent = formatTime(date, now);
    timeEl.title = date.toLocaleString();
  }

  function refreshTimes() {
    const now = new Date();
    els.list.querySelectorAll("time.time").forEach((el) => updateTime(el, now));
  }

  function createElement(tag, className, text) {
    const el = document.createElement(tag);
    el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function buildCommentElement(comment) {
    const author = String(comment.author || "").trim() || "anonymous";
    const hue = authorHue(author);

    const li = createElement("li", "comment");
    li.dataset.seq = String(comment.seq);

    const avatar = createElement("span", "avatar", Array.from(author)[0].toUpperCase());
    avatar.setAttribute("aria-hidden", "true");
    avatar.style.backgroundColor = `hsl(${hue} 55% 38%)`;

    const body = createElement("div", "body");
    const meta = createElement("div", "meta");
    const name = createElement("span", "author", author);
    name.style.color = `hsl(${hue} 80% 72%)`;
    const time = createElement("time", "time");
    time.dateTime = String(comment.created_at || "");
    updateTime(time, new Date());
    meta.append(name, time);

    body.append(meta, createElement("p", "message", String(comment.message ?? "")));
    li.append(avatar, body);
    return li;
  }

  function isComment(value) {
    return Boolean(value) && Number.isInteger(value.seq);
  }

  /** Inserts a comment in seq order; returns its element, or null if already shown. */
  function insertComment(comment) {
    if (!isComment(comment) || rendered.has(comment.seq)) return null;
    const li = buildCommentElement(comment);
    rendered.set(comment.seq, li);

    let before = els.list.lastElementChild;
    while (before && Number(before.dataset.seq) > comment.seq) before = before.previousElementSibling;
    els.list.insertBefore(li, before ? before.nextSibling : els.list.firstChild);
    return li;
  }

  function smallestShownSeq() {
    const first = els.list.firstElementChild;
    return first ? Number(first.dataset.seq) : null;
  }

  // ---------------------------------------------------------------- scrolling

  function isNearBottom() {
    const sc = els.scroller;
    return sc.scrollHeight - sc.scrollTop - sc.clientHeight < NEAR_EDGE_PX;
  }

  function scrollToBottom() {
    els.scroller.scrollTop = els.scroller.scrollHeight;
    els.newPill.hidden = true;
  }

  /** Runs `change` (which adds content above the viewport) without moving what the user sees. */
  function keepScrollPosition(change) {
    const fromBottom = els.scroller.scrollHeight - els.scroller.scrollTop;
    change();
    els.scroller.scrollTop = els.scroller.scrollHeight - fromBottom;
  }

  function onScroll() {
    if (isNearBottom()) els.newPill.hidden = true;
    if (els.scroller.scrollTop < NEAR_EDGE_PX && !olderFailed) loadOlder();
  }

  /** Renders comments arriving live; follows them only if the user was at the bottom. */
  function showLive(comments) {
    const wasNearBottom = isNearBottom();
    let added = 0;
    for (const comment of comments) {
      const li = insertComment(comment);
      if (li) {
        li.classList.add("fresh");
        added += 1;
      }
    }
    if (added === 0) return;
    if (wasNearBottom) scrollToBottom();
    else els.newPill.hidden = false;
  }

  // ---------------------------------------------------------------- history

  function setHasOlder(value) {
    hasOlder = value;
    els.loadOlder.hidden = !value;
  }

  async function fetchNewestPage() {
    for (let failures = 0; ; failures += 1) {
      try {
        const page = await requestJson(`${apiBase}?limit=${PAGE_SIZE}`);
        showNotice("");
        return page;
      } catch (err) {
        showNotice(`Couldn't load comments: ${err.message} Retrying…`);
        await sleep(backoffMs(failures));
      }
    }
  }

  async function loadHistory() {
    const page = await fetchNewestPage();
    const comments = (page.comments || []).filter(isComment);
    comments.forEach(insertComment);
    streamCursor = comments.reduce((max, c) => Math.max(max, c.seq), 0);
    setHasOlder(page.next_cursor != null);
    els.scroller.dataset.loaded = "true";
    scrollToBottom();
    fillViewport();
  }

  async function loadOlder() {
    const before = smallestShownSeq();
    if (loadingOlder || !hasOlder || before === null) return;
    loadingOlder = true;
    els.loadOlder.disabled = true;
    els.loadOlder.textContent = "Loading…";
    try {
      const page = await requestJson(`${apiBase}?before=${before}&limit=${PAGE_SIZE}`);
      keepScrollPosition(() => {
        (page.comments || []).forEach(insertComment);
        setHasOlder(page.next_cursor != null);
      });
      olderFailed = false;
      els.loadOlder.textContent = "Load older";
    } catch (err) {
      olderFailed = true;
      els.loadOlder.textContent = "Couldn't load older comments. Retry";
    } finally {
      loadingOlder = false;
      els.loadOlder.disabled = false;
    }
    fillViewport();
  }

  /** Keeps loading older pages while the list is too short to scroll. */
  function fillViewport() {
    const sc = els.scroller;
    if (hasOlder && !olderFailed && sc.scrollHeight <= sc.clientHeight) loadOlder();
  }

  // ---------------------------------------------------------------- live transports

  function startLive() {
    if (forcePoll || !window.EventSource) startPolling();
    else startSse();
  }

  function parseComment(data) {
    try {
      const comment = JSON.parse(data);
      return isComment(comment) ? comment : null;
    } catch (err) {
      return null;
    }
  }

  function startSse() {
    setStatus("connecting", "sse");
    const source = new EventSource(`${apiBase}/stream?last_id=${streamCursor}`);
    let opened = false;
    let errors = 0;

    source.addEventListener("open", () => {
      opened = true;
      errors = 0;
      setStatus("live", "sse");
    });
    source.addEventListener("comment", (event) => {
      const comment = parseComment(event.data);
      if (!comment) return;
      streamCursor = Math.max(streamCursor, comment.seq);
      showLive([comment]);
    });
    source.addEventListener("error", () => {
      errors += 1;
      const browserGaveUp = source.readyState === EventSource.CLOSED;
      if (!opened || browserGaveUp || errors >= SSE_MAX_ERRORS) {
        source.close();
        startPolling();
      } else {
        setStatus("reconnecting", "sse"); // the browser retries with Last-Event-ID
      }
    });
  }

  async function startPolling() {
    setStatus("connecting", "poll");
    let confirmed = false; // did the previous request succeed?
    let failures = 0;
    for (;;) {
      const timeout = confirmed ? POLL_TIMEOUT_S : POLL_PROBE_TIMEOUT_S;
      const url = `${apiBase}/poll?after=${streamCursor}&timeout=${timeout}`;
      try {
        const data = await requestJsonWithDeadline(url, (timeout + POLL_DEADLINE_GRACE_S) * 1000);
        const comments = (data.comments || []).filter(isComment);
        confirmed = true;
        failures = 0;
        setStatus("live", "poll");
        showLive(comments);
        streamCursor = Number.isInteger(data.cursor)
          ? data.cursor
          : comments.reduce((max, c) => Math.max(max, c.seq), streamCursor);
      } catch (err) {
        confirmed = false;
        setStatus("reconnecting", "poll");
        await sleep(backoffMs(failures));
        failures += 1;
      }
    }
  }

  // ---------------------------------------------------------------- posting

  function rememberAuthor(name) {
    try {
      localStorage.setItem(AUTHOR_STORAGE_KEY, name);
    } catch (err) {
      // storage unavailable (private mode, quota): the name just isn't remembered
    }
  }

  function restoreAuthor() {
    try {
      els.author.value = localStorage.getItem(AUTHOR_STORAGE_KEY) || "";
    } catch (err) {
      els.author.value = "";
    }
  }

  function updateCounter() {
    const length = els.message.value.length;
    els.charCount.textContent = `${length}/${MESSAGE_LIMIT}`;
    els.charCount.classList.toggle("near-limit", length >= MESSAGE_LIMIT * 0.9);
  }

  function showPostError(text, code = "") {
    els.postError.textContent = text;
    els.postError.dataset.code = code;
    els.postError.hidden = !text;
  }

  function idempotencyKeyFor(author, message) {
    if (!pendingPost || pendingPost.author !== author || pendingPost.message !== message) {
      pendingPost = { author, message, key: newIdempotencyKey() };
    }
    return pendingPost.key;
  }

  function showOwnComment(comment) {
    insertComment(comment);
    const li = rendered.get(comment.seq);
    if (li) li.classList.add("own");
    scrollToBottom();
  }

  async function submitPost(event) {
    event.preventDefault();
    if (els.send.disabled) return;
    const author = els.author.value.trim();
    const message = els.message.value;
    rememberAuthor(author);
    const payload = author ? { message, author } : { message };

    els.send.disabled = true;
    showPostError("");
    try {
      const comment = await requestJson(apiBase, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "Idempotency-Key": idempotencyKeyFor(author, message),
        },
        body: JSON.stringify(payload),
      });
      pendingPost = null;
      if (els.message.value === message) els.message.value = "";
      updateCounter();
      if (isComment(comment)) showOwnComment(comment);
    } catch (err) {
      showPostError(err.message, err.code);
    } finally {
      els.send.disabled = false;
      els.message.focus();
    }
  }

  // ---------------------------------------------------------------- startup

  function showInvalidVideo() {
    document.body.classList.add("invalid");
    els.title.textContent = "Unknown stream";
    els.status.hidden = true;
    els.fields.disabled = true;
    els.pageError.textContent =
      `Invalid video id "${videoId}". Use 1–64 letters, digits, "_" or "-", e.g. ?v=demo.`;
    els.pageError.hidden = false;
  }

  function wireUi() {
    els.scroller.addEventListener("scroll", onScroll, { passive: true });
    els.loadOlder.addEventListener("click", () => {
      olderFailed = false;
      loadOlder();
    });
    els.newPill.addEventListener("click", scrollToBottom);
    els.form.addEventListener("submit", submitPost);
    els.message.addEventListener("input", updateCounter);
    els.author.addEventListener("change", () => rememberAuthor(els.author.value.trim()));
    setInterval(refreshTimes, TIME_REFRESH_MS);
  }

  async function main() {
    if (!VIDEO_ID_PATTERN.test(videoId)) {
      showInvalidVideo();
      return;
    }
    els.title.textContent = videoId;
    document.title = `${videoId} · livecomments`;
    setStatus("connecting", forcePoll || !window.EventSource ? "poll" : "sse");
    restoreAuthor();
    updateCounter();
    wireUi();
    await loadHistory();
    startLive();
  }

  main();
})();
