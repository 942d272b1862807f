"""The outbound webhooks pages, the Stripe webhook events, the reminders, the API keys, the
audit log and the exports in Simplified Chinese and in English, in a real browser (Debian's
chromium, headless, driven by Playwright), against a real webhook receiver on 127.0.0.1.

An admin works through the pages in each language: an endpoint refused without event types,
then added (its secret once), a test event, deliveries, the receiver answering 410 (the
endpoint disabled, saying why in the page's language), enabled again, every failed delivery
replayed after the confirmation; the outbound events and one event, the member page's
panel; a parked Stripe event replayed; the e-mail settings saved; a key refused without
scopes, created and revoked, an origin allowed; the audit log and the exports.

In Chinese, no heading, table header, label, legend, button, navigation link or flash shows
an English word (beyond the names and codes the catalogue test keeps, codes shown as code,
and the shop's own data: member ids, URLs, the time zone, a service's own message); in
English, none shows Chinese beyond the shop's data. Screenshots at 1280 and 390 pixels wide
(``console-outbound-<lang>-*``) must not overflow the window.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.delivery import deliver_due
from loyalty.events.dispatch import dispatch_events
from loyalty.services import api_keys
from loyalty.services.reminders import send_reminders
from tests.e2e.browser_support import CHROMIUM, PageWatch, require_chromium, screenshots, served
from tests.integration import stripe_support as st
from tests.integration.helpers import PROGRAM, TZ, earn, execute, local
from tests.integration.test_admin_outbound import Receiver
from tests.integration.test_admin_support import PASSWORDS, build_app
from tests.unit.test_console_catalogue import KEPT

if TYPE_CHECKING:
    from playwright.sync_api import Page

# What a person reads as the page's own words: headings, table headers, labels, legends,
# buttons, terms, the navigation and flashes (codes inside them, shown as code, left out).
CHECKED = "h1, h2, h3, h4, h5, h6, th, label, legend, button, dt, summary, nav a, .alert"
_OWN_WORDS = """([scope, selector]) => {
  const root = document.querySelector(scope);
  return [...root.querySelectorAll(selector)].map((element) => {
    const copy = element.cloneNode(true);
    copy.querySelectorAll("code").forEach((code) => code.remove());
    return copy.textContent;
  });
}"""
# The shop's own data, shown as it is in either language.
DATA = (TZ, "CST", "Shop", "alice", "bob", "简体中文", "中文 (简体)")
DATA += ("收银台", "线上收银", "CRM 同步")  # key labels and an endpoint's description
# A key's name, as the secret's label says how to copy it (Ctrl+C).
KEPT_HERE = KEPT | {"Ctrl"}
_ENGLISH = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_CHINESE = re.compile(r"[\u3400-\u9fff]+")
ORIGIN = "https://pos.example"
CUSTOMER = "cus_later"

# The words each step expects, by language (English stays the default).
WORDS = {
    "zh": {
        "no_types": "请修改表单：事件类型: 请至少选择一种事件类型，或选择全部类型",
        "secret": "密钥只显示这一次",
        "enabled": "已启用",
        "tested": "测试事件已送达：端点在",
        "disabled": "已停用：端点于 2026-03-01 10:05 CST 返回 410 Gone",
        "enable_flash": "有 1 个失败投递等待重新投递。",
        "failed": "失败",
        "confirm": "重新投递发往",
        "replayed": "个失败投递将在下一轮投递（每分钟一次）时重新发送。",
        "event": "手动调整",
        "no_email": "会员没有邮箱地址",
        "saved": "邮件设置已保存；邮件提醒已开启。",
        "no_scopes": "请修改表单：权限范围: 请至少选择一个权限范围",
        "created": "请立即复制此密钥。",
        "revoked": "已吊销：此后使用它的请求都会被拒绝。",
        "allowed": f"已允许 {ORIGIN}。",
        "applied": "已应用",
    },
    "en": {
        "no_types": "please correct the form: event_types: choose at least one event type",
        "secret": "shown only this once",
        "enabled": "Enabled",
        "tested": "Test event delivered: the endpoint answered HTTP 200",
        "disabled": "Disabled: the endpoint answered 410 Gone on 2026-03-01 10:05 CST",
        "enable_flash": "1 failed deliveries wait for a replay.",
        "failed": "failed",
        "confirm": "Replay failed deliveries to",
        "replayed": "failed deliveries to",
        "event": "Manual adjustment",
        "no_email": "the member has no e-mail address",
        "saved": "E-mail settings saved; e-mail reminders are on.",
        "no_scopes": "please correct the form: scopes: choose at least one scope",
        "created": "Copy this key now.",
        "revoked": "is revoked: requests with it are refused from now on.",
        "allowed": f"{ORIGIN} is allowed.",
        "applied": "applied",
    },
}


@pytest.fixture
def console(
    sqlite_template: Path, tmp_path: Path
) -> Iterator[tuple[str, Database, FixedClock, str]]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(local(2026, 3, 1, 10))
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    s.update_program(db, program=PROGRAM, webhooks_allow_private=True)
    s.publish_rules(db, program=PROGRAM, rules={"base_ratio": "1", "expiry": {"days": 10}})
    execute(db, "UPDATE members SET email = 'alice@shop.example' WHERE external_id = 'alice'")
    earn(db, "alice", "a1", 120_000)
    earn(db, "bob", "b1", 80_000)
    send_reminders(db)
    dispatch_events(db)  # what happened before any endpoint goes nowhere
    api_keys.create_key(db, program=PROGRAM, scopes=["read"], label="收银台")
    event = st.payment_intent_succeeded("pi_later", 3000, customer=CUSTOMER)
    payload = st.body(event)
    headers = {"Stripe-Signature": st.sign(payload)}
    assert app.test_client().post("/webhooks/stripe", data=payload, headers=headers).status_code
    s.link_stripe_customer(db, program=PROGRAM, external_id="alice", stripe_customer_id=CUSTOMER)
    with served(app) as base:
        yield base, db, clock, str(event["id"])
    db.dispose()


def _send(db: Database) -> None:
    """What the events job does each minute: dispatch, then deliver what is due."""
    dispatch_events(db)
    deliver_due(db, timeout=5)


def foreign_words(page: Page, lang: str, data: tuple[str, ...], scope: str = "body") -> list[str]:
    """Words of the other language in what ``scope`` shows as the page's own words."""
    shown = " \n".join(page.evaluate(_OWN_WORDS, [scope, CHECKED]))
    for value in sorted(data, key=len, reverse=True):
        shown = shown.replace(value, " ")
    if lang == "zh":
        return sorted({w for w in _ENGLISH.findall(shown) if w not in KEPT_HERE})
    return sorted(set(_CHINESE.findall(shown)))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_outbound_keys_audit_and_export_pages_speak_one_language(
    console: tuple[str, Database, FixedClock, str], lang: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, db, clock, stripe_event = console
    words = WORDS[lang]
    with Receiver() as receiver, sync_playwright() as p:
        data = (*DATA, receiver.url, ORIGIN, stripe_event)

        def check(page: Page, name: str, scope: str = "body") -> None:
            """The page speaks ``lang`` only, and fits a laptop's and a phone's width."""
            found = foreign_words(page, lang, data, scope)
            assert not found, f"{name} in {lang} shows words of the other language: {found}"
            screenshots(page, f"console-outbound-{lang}-{name}")

        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(base).attach(page)
        page.goto(f"{base}/login?lang={lang}")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORDS["admin"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("admin")

        # an endpoint: refused without event types, then added, its secret once
        page.goto(f"{base}/admin/webhooks_out/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
        check(page, "1-no-endpoints")
        form = page.get_by_test_id("endpoint-form")
        form.locator("#url").fill(receiver.url)
        form.locator("#description").fill("CRM 同步")
        form.locator("#type-all").uncheck()
        form.locator("button[type=submit]").click()
        expect(page.get_by_test_id("form-problem")).to_contain_text(words["no_types"])
        check(page, "2-refused")
        page.get_by_test_id("endpoint-form").locator("#type-all").check()
        page.get_by_test_id("endpoint-form").locator("button[type=submit]").click()
        expect(page.get_by_test_id("secret-warning")).to_contain_text(words["secret"])
        check(page, "3-secret")
        page.locator(".card-body > a.btn-primary").click()
        expect(page.get_by_test_id("endpoint-state")).to_have_text(words["enabled"])

        # delivered, a test event; then a 410 disables it, enabled again, replayed
        earn(db, "alice", "a2", 5_000)
        _send(db)
        page.locator("form[action$='/test'] button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["tested"])
        check(page, "4-endpoints")
        receiver.status = 410
        clock.advance(dt.timedelta(minutes=5))
        s.adjust_points(
            db, program=PROGRAM, member="alice", points=10, reason="补偿", adjustment_id="a1"
        )
        _send(db)
        page.reload()
        expect(page.get_by_test_id("endpoint-state")).to_have_text(words["disabled"])
        receiver.status = 200
        page.locator("form[action$='/enable'] button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["enable_flash"])
        check(page, "5-enabled")
        page.get_by_test_id("endpoint-url").click()
        page.locator("#status").select_option("failed")
        page.locator("form:has(#status) button").click()
        expect(page.get_by_test_id("deliveries")).to_contain_text(words["failed"])
        check(page, "6-endpoint")
        page.get_by_test_id("deliveries").locator("a[href*='delivery?id=']").first.click()
        expect(page.get_by_test_id("attempts")).to_contain_text("HTTP 410")
        check(page, "7-delivery")
        page.locator("h4 a[href*='endpoint?id=']").click()
        page.get_by_test_id("replay-failed-form").locator("button").click()
        expect(page.get_by_test_id("replay-confirm")).to_contain_text(words["confirm"])
        check(page, "8-confirm")
        page.get_by_test_id("replay-confirm").locator("button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["replayed"])
        check(page, "9-replayed")

        # the outbound events, one event, the member page's panel
        page.goto(f"{base}/admin/webhooks_out/events")
        expect(page.get_by_test_id("outbound-events")).to_contain_text(words["event"])
        check(page, "10-events")
        page.get_by_test_id("outbound-events").get_by_role("link", name=words["event"]).click()
        expect(page.get_by_test_id("event-facts")).to_contain_text(words["event"])
        check(page, "11-event")
        page.goto(f"{base}/admin/members/member?id=alice")
        panel = page.get_by_test_id("member-outbound")
        expect(panel).to_contain_text(words["event"])
        check(page, "12-member-panel", scope="[data-testid=member-outbound]")

        # a parked Stripe event, replayed (the flash ends with the sync's own message)
        page.goto(f"{base}/admin/events/")
        check(page, "13-stripe-events")
        page.locator(f"input[name=event_id][value='{stripe_event}']").check()
        page.locator("form[action$='/replay'] button").click()
        said = f"{stripe_event}：" if lang == "zh" else f"{stripe_event}: "
        expect(page.locator(".alert-info")).to_contain_text(said)
        expect(page.locator(".alert-info")).to_contain_text(words["applied"])
        page.goto(f"{base}/admin/events/event?id={stripe_event}")
        check(page, "14-stripe-event")

        # reminders: bob has no address; the e-mail settings saved
        page.goto(f"{base}/admin/reminders/")
        expect(page.get_by_test_id("reminders")).to_contain_text(words["no_email"])
        check(page, "15-reminders")
        form = page.get_by_test_id("settings-form")
        form.locator("#host").fill("127.0.0.1")
        form.locator("#port").fill("2525")
        form.locator("#security").select_option("none")
        form.locator("#from_address").fill("points@shop.example")
        form.locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_have_text(words["saved"])
        check(page, "16-reminders-saved")

        # keys: refused without scopes, created, revoked; an origin allowed
        page.goto(f"{base}/admin/keys/")
        page.fill("#label", "线上收银")
        page.get_by_test_id("key-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-danger")).to_contain_text(words["no_scopes"])
        check(page, "17-keys-refused")
        page.fill("#label", "线上收银")
        page.check("#scope-earn")
        page.get_by_test_id("key-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-warning")).to_contain_text(words["created"])
        check(page, "18-key-created")
        page.locator(".card-body > a.btn-primary").click()
        page.get_by_test_id("keys").locator("tr", has_text="线上收银").locator("button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["revoked"])
        page.fill("#origin", ORIGIN)
        page.get_by_test_id("origin-form").locator("button").click()
        expect(page.locator(".alert-success")).to_have_text(words["allowed"])
        check(page, "19-keys")

        # the audit log and the exports
        page.goto(f"{base}/admin/audit/")
        expect(page.get_by_test_id("audit")).to_contain_text("webhook.add")
        check(page, "20-audit")
        page.goto(f"{base}/admin/export/")
        check(page, "21-export")
        browser.close()
    watch.assert_clean()
