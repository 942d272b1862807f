"""Outbound webhooks in the console in a real browser (Debian's chromium, headless, driven
by Playwright), against a real receiver on 127.0.0.1 that verifies every signature:

1. admin adds an endpoint (a refused URL first, shown on the form), sees its secret once
   (not on the list afterwards);
2. points are earned, dispatched and delivered (the services, in process): the endpoint's
   deliveries read delivered, the delivery shows its attempt and the exact body;
3. the receiver answers 410: the endpoint is disabled and says why in local time; admin
   enables it, replays one delivery from its page and the rest with "Replay all failed"
   after the confirmation; everything arrives, signed;
4. the Events tab, an event's JSON and the member page's outbound events.

Screenshots of each page at 1280 and 390 pixels wide are saved in ``tests/e2e/screenshots/``
(``admin-outbound-*``). No page may overflow the window, break the Content-Security-Policy
or load anything from another site.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.delivery import deliver_due, list_deliveries
from loyalty.events.dispatch import dispatch_events
from tests.e2e.browser_support import served
from tests.integration.helpers import PROGRAM, earn, enrol, local
from tests.integration.test_admin_outbound import Receiver
from tests.integration.test_admin_support import PASSWORDS, build_app

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
WIDTHS = (1280, 390)


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database, FixedClock]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(local(2026, 11, 27, 14, 2))
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    s.update_program(db, program=PROGRAM, webhooks_allow_private=True)
    with served(app) as base:
        yield base, db, clock
    db.dispose()


def _send(db: Database) -> None:
    """What the events job does each minute: dispatch, then deliver what is due."""
    dispatch_events(db)
    deliver_due(db, timeout=5)


def test_admin_adds_an_endpoint_sees_deliveries_and_replays_failures(
    console: tuple[str, Database, FixedClock],
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, Request, expect, sync_playwright

    base, db, clock = console
    enrol(db, "chen-王")
    SHOTS.mkdir(exist_ok=True)

    def shots(page: Page, name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(SHOTS / f"admin-outbound-{name}-{width}.png"), full_page=True)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} at {width}px is {overflow}px wider than the window"
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    with Receiver() as receiver, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        failed: list[str] = []
        elsewhere: list[str] = []
        console_errors: list[str] = []

        def on_failed(request: Request) -> None:
            if request.failure != "net::ERR_ABORTED":
                failed.append(f"{request.url} {request.failure}")

        def on_request(request: Request) -> None:
            if not request.url.startswith(base):
                elsewhere.append(request.url)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load"):
                console_errors.append(message.text)

        page.on("requestfailed", on_failed)
        page.on("request", on_request)
        page.on("console", on_console)

        page.goto(f"{base}/login")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORDS["admin"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("admin")

        # 1. a refused URL, then the endpoint; its secret once
        page.get_by_role("link", name="Webhooks", exact=True).click()
        expect(page.get_by_test_id("no-endpoints")).to_be_visible()
        form = page.get_by_test_id("endpoint-form")
        form.locator("#url").fill("ftp://127.0.0.1/hooks")
        form.locator("#description").fill("CRM 同步")
        form.locator("#type-all").uncheck()
        form.get_by_label("Points earned").check()
        form.get_by_label("Manual adjustment").check()
        form.locator("button[type=submit]").click()
        expect(page.get_by_test_id("form-problem")).to_contain_text("https://")
        expect(page.get_by_test_id("endpoint-form").locator("#description")).to_have_value(
            "CRM 同步"
        )
        shots(page, "1-refused")
        form = page.get_by_test_id("endpoint-form")
        form.locator("#url").fill(receiver.url)
        form.locator("button[type=submit]").click()
        expect(page.get_by_test_id("secret-warning")).to_contain_text("shown only this once")
        secret = page.get_by_test_id("secret").input_value()
        assert secret.startswith("whsec_")
        shots(page, "2-secret")
        page.get_by_role("link", name="I have copied it").click()
        expect(page.get_by_test_id("endpoint-state")).to_have_text("Enabled")
        assert secret not in page.content()

        # 2. earned, dispatched and delivered
        earn(db, "chen-王", "o-1", 128_800)
        earn(db, "alice", "o-2", 50_000)
        _send(db)
        assert len(receiver.received) == 2
        for headers, body in receiver.received:
            assert Webhook(secret).verify(body, headers)["type"] == "points.earned"
        page.reload()
        expect(page.get_by_test_id("endpoint-counts")).to_contain_text("2 delivered")
        shots(page, "3-endpoints")
        page.get_by_test_id("endpoint-url").click()
        deliveries = page.get_by_test_id("deliveries")
        expect(deliveries).to_contain_text("chen-王")
        expect(deliveries.locator("tbody tr, tr").filter(has_text="delivered")).to_have_count(2)
        shots(page, "4-deliveries")
        deliveries.get_by_role("link", name="#1").click()
        expect(page.get_by_test_id("attempts")).to_contain_text("HTTP 200")
        raw = page.get_by_test_id("delivery-raw").text_content() or ""
        assert raw.encode("utf-8") in {body for _, body in receiver.received}
        shots(page, "5-delivery")

        # 3. the receiver is gone (410): disabled, enabled again, replayed
        receiver.status = 410
        clock.advance(dt.timedelta(minutes=10))
        for n in range(3):
            s.adjust_points(
                db,
                program=PROGRAM,
                member="alice",
                points=10 + n,
                reason="goodwill",
                adjustment_id=f"a{n}",
            )
        _send(db)
        page.goto(f"{base}/admin/webhooks_out/")
        expect(page.get_by_test_id("endpoint-state")).to_have_text(
            "Disabled: the endpoint answered 410 Gone on 2026-11-27 14:12 CST"
        )
        expect(page.get_by_test_id("endpoint-counts")).to_contain_text("3 failed")
        shots(page, "6-disabled")
        receiver.status = 200
        page.get_by_role("button", name="Enable").click()
        expect(page.locator(".alert-success")).to_contain_text("3 failed deliveries wait")
        page.get_by_test_id("endpoint-url").click()
        page.locator("#status").select_option("failed")
        page.get_by_role("button", name="Filter").click()
        rows = page.get_by_test_id("deliveries")
        expect(rows).to_contain_text("Manual adjustment")
        rows.get_by_role("link", name="#3").click()
        expect(page.get_by_test_id("attempts")).to_contain_text("HTTP 410")
        page.get_by_role("button", name="Replay this delivery").click()
        expect(page.locator(".alert-success")).to_contain_text("will be sent again")
        expect(page.get_by_test_id("delivery-status")).to_contain_text("pending")
        page.get_by_role("link", name=receiver.url).click()
        page.locator("#since").fill("2026-11-27")
        page.get_by_role("button", name="Replay all failed…").click()
        expect(page.get_by_test_id("replay-confirm")).to_contain_text("on or after 2026-11-27")
        shots(page, "7-confirm")
        page.get_by_role("button", name="Yes, replay them").click()
        expect(page.locator(".alert-success")).to_contain_text("2 failed deliveries")
        for _ in range(3):  # a member's deliveries go one after the other, in order
            _send(db)
        statuses = [d.status for d in list_deliveries(db, program=PROGRAM)]
        assert statuses == ["delivered"] * 5
        adjusted = [
            json.loads(body)["data"]["points"]
            for headers, body in receiver.received
            if Webhook(secret).verify(body, headers)["type"] == "points.adjusted"
        ]
        assert adjusted[-3:] == [10, 11, 12]
        page.reload()
        expect(page.get_by_test_id("endpoint-counts")).to_contain_text("5 delivered")
        shots(page, "8-replayed")

        # 4. the events tab, an event's JSON, the member page
        page.locator("h4").get_by_role("link", name="Webhooks").click()
        page.get_by_test_id("outbound-tabs").get_by_role("link", name="Events").click()
        events = page.get_by_test_id("outbound-events")
        expect(events).to_contain_text("Manual adjustment")
        expect(events).to_contain_text("Member enrolled")
        shots(page, "9-events")
        page.locator("#type").select_option("points.earned")
        page.locator("#member").fill("chen-王")
        page.get_by_role("button", name="Filter").click()
        expect(page.get_by_test_id("outbound-events")).to_contain_text("1,288")
        page.get_by_test_id("outbound-events").get_by_role("link", name="Points earned").click()
        body = json.loads(page.get_by_test_id("event-raw").text_content() or "")
        assert body["data"]["member"] == "chen-王" and body["data"]["points"] == 1_288
        expect(page.get_by_test_id("event-deliveries")).to_contain_text("delivered")
        shots(page, "10-event")
        page.goto(f"{base}/admin/members/member?id=alice")
        panel = page.get_by_test_id("member-outbound")
        expect(panel).to_contain_text("Manual adjustment")
        expect(panel).to_contain_text("delivered")
        panel.scroll_into_view_if_needed()
        shots(page, "11-member")
        browser.close()

    assert not failed, f"requests failed (assets missing?): {failed}"
    assert not elsewhere, f"the console loaded something from another site: {elsewhere}"
    assert not console_errors, f"the browser reported errors (CSP?): {console_errors}"
