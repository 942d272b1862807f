"""The console's Reminders page in a real browser (Debian's chromium, headless, Playwright),
with a real SMTP server (aiosmtpd) on loopback:

1. admin opens Reminders from the menu: alice's reminder pending, bob's skipped (no
   address), both previews (the HTML ones in their sandboxed frames);
2. a bad SMTP host is refused on the form, with what was typed kept; the fixed settings
   save, and a test e-mail reaches the server;
3. the due e-mails go out (the service, in process): alice's reminder shows as sent, and the
   state filter finds it;
4. a viewer reads the page and the settings, without the form.

Screenshots at 1280 and 390 pixels wide go to ``tests/e2e/screenshots/``
(``admin-reminders-*``). No page may overflow the window, break the Content-Security-Policy or
load anything from another site.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.email import send_due_emails
from loyalty.services.reminders import send_reminders
from tests.e2e.browser_support import served
from tests.integration.helpers import PROGRAM, earn, execute, local
from tests.integration.test_admin_support import PASSWORDS, build_app

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
WIDTHS = (1280, 390)


class Inbox:
    """An aiosmtpd handler keeping the recipients of what it accepts."""

    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    db = Database.from_url(f"sqlite:///{path}", clock=FixedClock(local(2026, 3, 1, 10)))
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    s.publish_rules(db, program=PROGRAM, rules={"base_ratio": "1", "expiry": {"days": 10}})
    execute(
        db,
        "UPDATE members SET email = 'alice.with.a.rather.long.address@example.com'"
        " WHERE external_id = 'alice'",
    )
    earn(db, "alice", "a1", 120_000)
    earn(db, "bob", "b1", 80_000)
    send_reminders(db)
    with served(app) as base:
        yield base, db
    db.dispose()


def test_admin_sets_up_email_reminders_and_a_viewer_reads_them(
    console: tuple[str, Database], smtp: tuple[int, Inbox]
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, Request, expect, sync_playwright

    base, db = console
    port, inbox = smtp
    SHOTS.mkdir(exist_ok=True)

    def shots(page: Page, name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(SHOTS / f"admin-reminders-{name}-{width}.png"), full_page=True)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} at {width}px is {overflow}px wider than the window"
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    def sign_in(page: Page, username: str) -> None:
        page.goto(f"{base}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORDS[username])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text(username)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        failed: list[str] = []
        elsewhere: list[str] = []
        console_errors: list[str] = []

        def on_failed(request: Request) -> None:
            if request.failure != "net::ERR_ABORTED":
                failed.append(f"{request.url} {request.failure}")

        def on_request(request: Request) -> None:
            if not request.url.startswith((base, "about:", "data:")):
                elsewhere.append(request.url)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load"):
                console_errors.append(message.text)

        page.on("requestfailed", on_failed)
        page.on("request", on_request)
        page.on("console", on_console)

        # 1. admin opens Reminders: alice pending, bob skipped, both previews
        sign_in(page, "admin")
        page.get_by_role("link", name="Reminders", exact=True).click()
        rows = page.get_by_test_id("reminders")
        expect(rows.locator("tr[data-state=pending]")).to_contain_text("alice")
        expect(rows.locator("tr[data-state=skipped]")).to_contain_text(
            "the member has no e-mail address"
        )
        expect(page.get_by_test_id("subject-zh_Hans")).to_have_text(
            "您有 1,200 积分将于 2026年3月16日 到期"
        )
        expect(page.get_by_test_id("subject-en")).to_have_text(
            "1,200 points will expire on March 16, 2026"
        )
        frame = page.frame_locator("[data-testid=preview-zh_Hans] iframe")
        expect(frame.locator("body")).to_contain_text("2026年3月16日 是使用这些积分的最后一天")
        shots(page, "1-page")
        for lo in ("zh_Hans", "en"):  # a full-page shot leaves sandboxed frames blank
            page.get_by_test_id(f"preview-{lo}").screenshot(
                path=str(SHOTS / f"admin-reminders-preview-{lo}.png")
            )

        # 2. a bad host is refused on the form; the fixed settings save; a test e-mail goes
        form = page.get_by_test_id("settings-form")
        form.locator("#host").fill("smtp.example.com/inbox")
        form.locator("#port").fill(str(port))
        form.locator("#security").select_option("none")
        form.locator("#from_address").fill("points@shop.example")
        form.locator("#shop_url").fill("https://shop.example/points")
        form.locator("button[type=submit]").click()
        expect(page.get_by_test_id("settings-error")).to_contain_text(
            "host must be a server name or address"
        )
        expect(page.locator("#host")).to_have_value("smtp.example.com/inbox")
        shots(page, "2-refused")
        page.locator("#host").fill("127.0.0.1")
        page.get_by_test_id("settings-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_contain_text("E-mail settings saved")
        page.get_by_test_id("test-form").locator("#to").fill("me@shop.example")
        page.get_by_test_id("test-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_contain_text(
            "Test e-mail sent to me@shop.example"
        )
        assert inbox.recipients == ["me@shop.example"]
        shots(page, "3-saved")

        # 3. the due e-mails go out; alice's reminder shows as sent
        assert send_due_emails(db).sent == 1
        page.reload()
        expect(rows.locator("tr[data-state=sent]")).to_contain_text("sent 2026-03-01 10:00")
        page.locator("select[name=state]").select_option("sent")
        page.get_by_test_id("reminder-filter").locator("button[type=submit]").click()
        expect(page.get_by_test_id("reminders").locator("tr[data-state]")).to_have_count(1)
        expect(page.get_by_test_id("reminders")).not_to_contain_text("bob")
        shots(page, "4-sent")
        page.click("text=Sign out")

        # 4. a viewer reads the page and the settings, without the form
        sign_in(page, "viewer")
        page.goto(f"{base}/admin/reminders/")
        expect(page.get_by_test_id("settings")).to_contain_text("127.0.0.1")
        expect(page.get_by_test_id("settings-form")).to_have_count(0)
        expect(page.get_by_test_id("test-form")).to_have_count(0)
        shots(page, "5-viewer")
        browser.close()

    assert inbox.recipients == [
        "me@shop.example",
        "alice.with.a.rather.long.address@example.com",
    ]
    assert not failed, f"requests failed (assets missing?): {failed}"
    assert not elsewhere, f"the console loaded something from another site: {elsewhere}"
    assert not console_errors, f"the browser reported errors (CSP?): {console_errors}"
