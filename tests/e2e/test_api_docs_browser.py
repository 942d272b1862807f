"""The API's docs page (Swagger UI at ``/v1/docs``) in a real browser, with no network.

Debian's chromium, headless, opens the page of a loopback server: Swagger UI's files come
from the installed package, the document from ``/v1/openapi.json``; no request may leave
127.0.0.1. The screenshot ``tests/e2e/screenshots/api-docs.png`` (git-ignored) is for a person
to look at.
"""

from __future__ import annotations

from pathlib import Path

from loyalty.db import Database
from tests.http_api.live_server import live_api
from tests.integration.helpers import make_program

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"


def test_the_docs_page_renders_offline(db: Database) -> None:
    from playwright.sync_api import expect, sync_playwright

    make_program(db)
    SHOTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []
    with live_api(db) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("http://127.0.0.1:", "data:"))
                else elsewhere.append(r.url)
            ),
        )
        page.goto(f"{base}/v1/docs")
        expect(page.get_by_text("Jifen API").first).to_be_visible(timeout=15_000)
        expect(page.get_by_text("/v1/earnings/purchase").first).to_be_visible()
        expect(page.get_by_role("button", name="Authorize")).to_be_visible()
        page.screenshot(path=str(SHOTS / "api-docs.png"))
        browser.close()
    assert elsewhere == []
