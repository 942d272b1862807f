"""What the console's browser tests share: Debian's chromium (skipped without it, required
with ``CI=true``), an app served on a free loopback port, screenshots at a laptop's and a
phone's width that must not overflow, and a watch over the page for failed requests,
requests to other sites and browser errors (a broken Content-Security-Policy shows there)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from flask import Flask
    from playwright.sync_api import ConsoleMessage, Page, Request

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
WIDTHS = (1280, 390)


def require_chromium() -> None:
    """Skip the calling test without Debian's chromium; with ``CI=true``, fail instead."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """``app`` served by Werkzeug on a free port of 127.0.0.1 in a thread, for as long as the
    block runs; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def screenshots(page: Page, name: str) -> None:
    """``name-<width>.png`` in ``tests/e2e/screenshots/`` at each width; the page must fit."""
    SHOTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} at {width}px is {overflow}px wider than the window"
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


@dataclass
class PageWatch:
    """Failed requests, requests outside ``base`` and browser errors seen on a page."""

    base: str
    failed: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> PageWatch:
        page.on("requestfailed", self._failed)
        page.on("request", self._request)
        page.on("console", self._console)
        return self

    def _failed(self, request: Request) -> None:
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"{request.url} {request.failure}")

    def _request(self, request: Request) -> None:
        if not request.url.startswith(self.base):
            self.elsewhere.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load"):
            self.errors.append(message.text)

    def assert_clean(self) -> None:
        assert not self.failed, f"requests failed (assets missing?): {self.failed}"
        assert not self.elsewhere, f"the page loaded something from another site: {self.elsewhere}"
        assert not self.errors, f"the browser reported errors (CSP?): {self.errors}"
