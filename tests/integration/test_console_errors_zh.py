"""A service's refusal on a Chinese console page is a Chinese sentence (with the English
original only inside ``（原文：…）`` when the sentence cannot carry it all); on an English page it
is the service's English message, as before."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from loyalty import services as s
from loyalty.db import Database
from tests.integration.helpers import PROGRAM, earn
from tests.integration.test_admin_support import build_app, login, post

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
SHIP = {"name": "Li Lei", "phone": "13800000000", "address": "1 Nanjing Rd", "city": "Shanghai"}


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


def signed_in(app: Flask, role: str, lang: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    token = login(client, role)
    client.get(f"/admin/?lang={lang}")
    return client, token


def alerts(page: str) -> list[str]:
    """The text of every flashed message (and error-page message) on ``page``."""
    found = re.findall(r'role="alert">(.*?)</div>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>|\s+", " ", text)).strip() for text in found]


def error_message(page: str) -> str:
    """The message of the console's error page."""
    found = re.search(r"<main.*?<p>(.*?)</p>", page, re.S)
    assert found, page
    return html.unescape(found.group(1)).strip()


def outside_original(text: str) -> str:
    return re.sub(r"（原文：.*?）", "", text)


def english_sentence(text: str) -> list[str]:
    """Runs of three or more English words outside the original: an English sentence."""
    return re.findall(r"[A-Za-z]+(?:[ ,;:]+[A-Za-z]+){2,}", outside_original(text))


def test_a_deduction_beyond_the_balance(app: Flask, db: Database) -> None:
    earn(db, "alice", "o1", 262_100)
    for lang, expected in (
        ("zh", "alice 现在可扣除的积分为 2,621，不足 5,000：手动扣减永远不会让余额低于零；"
         "最多扣除 2,621 积分。"),
        ("en", "alice has 2,621 points that can be deducted now, not 5,000: a manual deduction "
         "never takes a balance below zero; deduct at most 2,621 points."),
    ):  # fmt: skip
        client, token = signed_in(app, "operations", lang)
        post(
            client, "/admin/adjustments/new", token, member="alice", points=-5000, reason="too much"
        )
        found = alerts(client.get("/admin/adjustments/").get_data(as_text=True))
        assert expected in found, found
    assert s.list_adjustment_requests(db, program=PROGRAM) == []


def test_a_refused_redemption_cancel(app: Flask, db: Database) -> None:
    s.create_reward(
        db,
        program=PROGRAM,
        code="mug",
        kind="item",
        terms={"name": "Mug", "points": 300},
        stock=5,
        actor="test",
    )
    earn(db, "alice", "o1", 100_000)
    redemption = s.redeem_reward(
        db, program=PROGRAM, member="alice", reward="mug", idempotency_key="r1", shipping=SHIP
    ).id
    client, token = signed_in(app, "operations", "zh")
    for step in ("shipped", "delivered"):
        post(client, "/admin/fulfilment/advance-one", token, id=str(redemption), status=step)
    client.get(f"/admin/fulfilment/redemption?id={redemption}")  # the success flashes
    post(client, "/admin/fulfilment/cancel", token, id=str(redemption), reason="broken")
    page = client.get(f"/admin/fulfilment/redemption?id={redemption}").get_data(as_text=True)
    [said] = alerts(page)
    assert said.startswith(f"兑换 {redemption} 当前为“") and "最终状态" in said, said
    assert not english_sentence(said), said
    client.get("/admin/?lang=en")
    post(client, "/admin/fulfilment/cancel", token, id=str(redemption), reason="broken")
    page = client.get(f"/admin/fulfilment/redemption?id={redemption}").get_data(as_text=True)
    assert alerts(page) == [
        f"redemption {redemption} is delivered; it cannot become cancelled "
        "(possible: none (it is final))"
    ]
    assert s.balance(db, program=PROGRAM, member="alice").available == 700  # not given back


def test_a_rules_publish_with_a_bad_value(app: Flask) -> None:
    for lang in ("zh", "en"):
        client, token = signed_in(app, "marketing", lang)
        response = post(
            client, "/admin/rules/draft", token, action="publish", previewed="x", base_ratio="-1"
        )
        assert response.status_code == 400
        found = alerts(response.get_data(as_text=True))
        if lang == "zh":
            [said] = [a for a in found if "负数" in a]
            assert said == "base_ratio 不能为负数，填写的是 -1。", found
        else:
            assert "base_ratio must not be negative, got -1" in found, found


def test_a_missing_member_page(app: Flask) -> None:
    client, _token = signed_in(app, "viewer", "zh")
    response = client.get("/admin/members/member?id=nobody")
    assert response.status_code == 404
    said = error_message(response.get_data(as_text=True))
    assert said == "项目 shop 中没有会员 nobody。", said
    client.get("/admin/?lang=en")
    response = client.get("/admin/members/member?id=nobody")
    assert error_message(response.get_data(as_text=True)) == "no member 'nobody' in program 'shop'"
