"""The member page's rewards over HTTP, on both databases: the catalog with prices, stock and
why not in words, redeeming through two plain forms (confirm, then redeem once however often
it is sent), my rewards with codes, vouchers, draws and fulfilment in words, and every
refusal as a page: a bad token, a form this server did not sign, another member's
redemption, no stock, a limit, too few points."""

from __future__ import annotations

import html
import re
import urllib.parse

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api.member_texts import PAGE
from loyalty import services as s
from loyalty.db import Database
from loyalty.services.reward_results import RewardOffer
from tests.http_api.conftest import new_key
from tests.http_api.test_member_page import BROWSER_ZH, CHINESE, by_testid, text_of, token_for
from tests.integration.helpers import PROGRAM, earn, enrol, row_counts

STAFF = "ops@shop"


def _reward(db: Database, code: str, kind: str, stock: int | None = None, **terms: object) -> None:
    s.create_reward(
        db, program=PROGRAM, code=code, kind=kind, terms=terms, actor=STAFF, stock=stock
    )


@pytest.fixture
def catalog(program_db: Database) -> Database:
    """alice has 1,000 points and bob 5,000; the catalog holds a coupon with three codes, a
    voucher, a mug (stock 2, one a day), a draw for the mug or nothing, a hidden prize, and
    a trip nobody can afford."""
    enrol(program_db, "alice", "bob")
    earn(program_db, "alice", "o-1", 100_000)
    earn(program_db, "bob", "o-2", 500_000)
    _reward(
        program_db,
        "coffee",
        "coupon",
        name="Free coffee",
        points=200,
        description="Any size, any shop",
        image_url="https://cdn.shop.example/coffee.jpg",
    )
    s.add_codes(
        program_db, program=PROGRAM, reward="coffee", codes=["CAFE-0001", "CAFE-0002"], actor=STAFF
    )
    s.add_codes(program_db, program=PROGRAM, reward="coffee", codes=["CAFE-0003"], actor=STAFF)
    _reward(
        program_db,
        "ten-off",
        "voucher",
        name="¥20 off",
        points=300,
        voucher_amount_minor=2_000,
        voucher_valid_days=30,
        image_url="http://insecure.example/v.png",
    )
    _reward(program_db, "mug", "item", stock=2, name="Tea mug", points=400, limits={"day": 1})
    _reward(program_db, "sticker", "item", stock=5, name="Sticker", points=1, visible=False)
    _reward(
        program_db,
        "lucky",
        "draw",
        name="Lucky draw",
        points=50,
        prizes=[{"reward": "sticker", "chance_ppm": 500_000, "label": "A sticker"}],
    )
    _reward(program_db, "trip", "item", stock=1, name="Trip to Hangzhou", points=90_000)
    return program_db


@pytest.fixture
def token(client: FlaskClient, catalog: Database) -> str:
    return token_for(client, new_key(catalog, "read"), "alice", ttl_seconds=3600)


def open_rewards(client: FlaskClient, token: str, language: str = "en") -> TestResponse:
    return client.get(
        "/m/rewards", query_string={"token": token}, headers={"Accept-Language": language}
    )


def form_of(page: TestResponse, reward: str) -> dict[str, str]:
    """The hidden and preset fields of ``reward``'s redeem form on the catalog page."""
    body = page.get_data(as_text=True)
    start = body.index(f'data-testid="reward-{reward}"')
    end = body.find('data-testid="reward-', start + 1)
    card = body[start : end if end > 0 else len(body)]
    assert "<form" in card, f"no form to redeem {reward}"
    form = card[card.index("<form") : card.index("</form>")]
    fields = re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form)
    return {name: html.unescape(value) for name, value in fields}


def post(
    client: FlaskClient, step: str, fields: dict[str, str], language: str = "en"
) -> TestResponse:
    return client.post(f"/m/rewards/{step}", data=fields, headers={"Accept-Language": language})


def redeem(client: FlaskClient, token: str, reward: str, **typed: str) -> TestResponse:
    """Open the catalog, fill ``reward``'s form, confirm, redeem: the redeem's answer."""
    fields = form_of(open_rewards(client, token), reward) | typed
    confirmed = post(client, "confirm", fields)
    assert confirmed.status_code == 200, text_of(confirmed)
    return post(client, "redeem", fields)


def follow(client: FlaskClient, answer: TestResponse, language: str = "en") -> TestResponse:
    assert answer.status_code == 303, text_of(answer)
    return client.get(answer.headers["Location"], headers={"Accept-Language": language})


def csp(response: TestResponse) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return dict(d.strip().split(" ", 1) for d in header.split(";"))


def test_the_catalog_shows_prices_stock_pictures_and_why_not(
    client: FlaskClient, token: str
) -> None:
    page = open_rewards(client, token)
    assert page.status_code == 200
    words = text_of(page)
    assert by_testid(page, "spendable") == "You have 1,000 points to spend"
    for shown in ("Free coffee", "¥20 off", "Tea mug", "Lucky draw", "Trip to Hangzhou"):
        assert shown in words
    assert "Sticker" not in words  # hidden: only won in the draw
    assert "200 points" in words and "3 left" in words and "2 left" in words
    assert "Worth CN¥20.00, valid for 30 days" in words
    assert "You need 89,000 more points" in words
    body = page.get_data(as_text=True)
    assert 'src="https://cdn.shop.example/coffee.jpg"' in body
    assert "insecure.example" not in body  # an http picture would be blocked: none shown
    assert "<script" not in body and "style=" not in body
    policy = csp(page)
    assert policy["img-src"] == "'self' https:" and policy["form-action"] == "'self'"
    assert policy["script-src"] == "'none'"
    points = client.get("/m/", query_string={"token": token})
    assert csp(points)["img-src"] == "'self'" and csp(points)["form-action"] == "'none'"


def test_the_catalog_in_chinese(client: FlaskClient, token: str) -> None:
    page = open_rewards(client, token, BROWSER_ZH)
    words = text_of(page)
    assert '<html lang="zh-CN">' in page.get_data(as_text=True)
    assert "积分商城" in words and "您有 1,000 积分可用" in words
    assert "剩余 3 件" in words and "还差 89,000 积分" in words
    assert "价值 ¥20.00，30 天内有效" in words
    assert "兑换" in words and "收货地址" in words


def test_a_coupon_is_redeemed_once_however_often_the_form_is_sent(
    client: FlaskClient, token: str, catalog: Database
) -> None:
    fields = form_of(open_rewards(client, token), "coffee") | {"quantity": "2"}
    confirmed = post(client, "confirm", fields)
    assert confirmed.status_code == 200
    assert by_testid(confirmed, "question") == "Spend 400 points on 2 × Free coffee?"
    assert "You have 1,000 points; 600 will be left." in text_of(confirmed)
    before = row_counts(catalog)
    first = post(client, "redeem", fields)
    again = post(client, "redeem", fields)  # a double click, or the browser resending
    assert first.headers["Location"] == again.headers["Location"]
    assert row_counts(catalog)["reward_redemptions"] == before["reward_redemptions"] + 1
    assert s.balance(catalog, program=PROGRAM, member="alice").available == 600
    result = follow(client, first)
    assert by_testid(result, "done") == "Redeemed"
    assert "400 points spent." in text_of(result)
    codes = re.findall(r'data-testid="code">([^<]+)<', result.get_data(as_text=True))
    assert codes == ["CAFE-0001", "CAFE-0002"]
    assert by_testid(result, "state") == "Issued"
    reload = client.get(first.headers["Location"])
    assert reload.status_code == 200
    assert row_counts(catalog)["reward_redemptions"] == before["reward_redemptions"] + 1


def test_an_item_needs_an_address_and_shows_its_fulfilment(
    client: FlaskClient, token: str, catalog: Database
) -> None:
    fields = form_of(open_rewards(client, token), "mug")
    missing = post(client, "confirm", fields | {"ship_name": "Alice"})
    assert missing.status_code == 422
    assert by_testid(missing, "problem") == (
        "Fill in the name, phone and address so we can ship it to you."
    )
    assert 'value="Alice"' in missing.get_data(as_text=True)  # kept, not typed again
    address = {"ship_name": "Alice", "ship_phone": "138 0000 0000", "ship_address": "1 Lake Rd"}
    confirmed = post(client, "confirm", fields | address | {"ship_city": "Hangzhou"})
    assert by_testid(confirmed, "address") == "Alice, 138 0000 0000, 1 Lake Rd, Hangzhou"
    answer = post(client, "redeem", fields | address | {"ship_city": "Hangzhou"})
    result = follow(client, answer)
    assert by_testid(result, "state") == "Order received"
    assert by_testid(result, "ship-to") == "Ships to: Alice, 138 0000 0000, 1 Lake Rd, Hangzhou"
    redemption = int(answer.headers["Location"].split("/mine/")[1].split("?")[0])
    s.advance_fulfilment(
        catalog, program=PROGRAM, redemption=redemption, status="shipped", actor=STAFF
    )
    mine = client.get("/m/rewards/mine", query_string={"token": token})
    assert by_testid(mine, "state") == "Shipped"
    assert "Shipped Nov 21, 2026 18:00" in text_of(mine)  # 10:00 UTC in Shanghai
    chinese = client.get(
        "/m/rewards/mine", query_string={"token": token}, headers={"Accept-Language": BROWSER_ZH}
    )
    assert "已发货" in text_of(chinese) and "2026年11月21日 18:00 已发货" in text_of(chinese)
    s.cancel_redemption(
        catalog, program=PROGRAM, redemption=redemption, reason="address unknown", actor=STAFF
    )
    mine = text_of(client.get("/m/rewards/mine", query_string={"token": token}))
    assert "Cancelled, points returned" in mine
    assert "Cancelled Nov 21, 2026 18:00 · Reason: address unknown" in mine


def test_a_voucher_shows_its_value_last_local_day_and_the_order_that_used_it(
    client: FlaskClient, token: str, catalog: Database
) -> None:
    result = follow(client, redeem(client, token, "ten-off"))
    code = re.search(r"V-[0-9A-Z]+", result.get_data(as_text=True))
    assert code
    assert "Worth CN¥20.00" in text_of(result)
    # redeemed on 21 November at 18:00 in Shanghai, valid 30 local days: 20 December
    assert "Use by December 20, 2026" in text_of(result)
    s.consume_voucher(
        catalog,
        program=PROGRAM,
        code=code.group(0),
        order_id="o-77",
        order_total_minor=9_900,
        currency="CNY",
    )
    mine = text_of(client.get("/m/rewards/mine", query_string={"token": token}))
    assert "Used on order o-77" in mine
    zh = client.get(
        "/m/rewards/mine", query_string={"token": token}, headers={"Accept-Language": BROWSER_ZH}
    )
    assert "已在订单 o-77 中使用" in text_of(zh)


def test_a_draw_says_what_it_gave(client: FlaskClient, token: str, catalog: Database) -> None:
    result = follow(client, redeem(client, token, "lucky"))
    outcome = by_testid(result, "draw")
    assert by_testid(result, "state") == "Drawn"
    assert outcome in ("You won: A sticker", "No prize this time.")
    mine = client.get("/m/rewards/mine", query_string={"token": token})
    # the prize is shown under its draw, not as a redemption of its own
    assert mine.get_data(as_text=True).count('class="card redemption"') == (
        2 if outcome.startswith("You won") else 1
    )


def test_refusals_are_messages_in_the_page_and_take_nothing(
    client: FlaskClient, token: str, catalog: Database
) -> None:
    first, second = (form_of(open_rewards(client, token), "mug") | _address() for _ in "12")
    follow(client, post(client, "redeem", first))
    assert "Daily limit reached: try tomorrow" in text_of(open_rewards(client, token))
    again = post(client, "redeem", second)  # a form rendered before: one a day
    assert again.status_code == 409
    assert by_testid(again, "problem") == "You reached the limit for Tea mug. No points were taken."
    assert again.mimetype == "text/html"
    s.set_reward_retired(catalog, program=PROGRAM, reward="mug", retired=True, actor=STAFF)
    before = row_counts(catalog)
    fields = form_of(open_rewards(client, token), "coffee") | {"quantity": "3"}
    s.redeem_reward(catalog, program=PROGRAM, member="bob", reward="coffee")  # one left
    short = post(client, "redeem", fields)
    assert short.status_code == 409
    assert "Sorry, there are not enough of Free coffee left. No points were taken" in text_of(short)
    assert row_counts(catalog)["reward_redemptions"] == before["reward_redemptions"] + 1
    too_much = post(
        client, "confirm", form_of(open_rewards(client, token), "ten-off") | {"quantity": "3"}
    )
    assert too_much.status_code == 422
    assert by_testid(too_much, "problem") == (
        "Not enough points: ¥20 off needs 900 points and you have 600."
    )
    zh = post(
        client,
        "confirm",
        form_of(open_rewards(client, token), "ten-off") | {"quantity": "3", "lang": "zh"},
    )
    assert by_testid(zh, "problem") == "积分不足：¥20 off 需要 900 积分，您有 600 积分。"
    bad = post(
        client, "confirm", form_of(open_rewards(client, token), "ten-off") | {"quantity": "0"}
    )
    assert by_testid(bad, "problem") == "Enter a quantity from 1 to 100."


def _address() -> dict[str, str]:
    return {"ship_name": "Alice", "ship_phone": "138", "ship_address": "1 Lake Rd"}


@pytest.mark.parametrize("step", ["confirm", "redeem"])
def test_a_form_without_this_servers_nonce_is_refused(
    client: FlaskClient, token: str, catalog: Database, step: str
) -> None:
    fields = form_of(open_rewards(client, token), "coffee")
    bobs = token_for(client, new_key(catalog, "read"), "bob")
    before = row_counts(catalog)
    for forged in (
        {k: v for k, v in fields.items() if k != "nonce"},
        fields | {"nonce": fields["nonce"][:-2] + "xx"},
        fields | {"key": "chosen-elsewhere"},
        fields | {"reward": "ten-off"},
        fields | {"token": bobs},  # a nonce is for the token it was rendered for
    ):
        refused = post(client, step, forged)
        assert refused.status_code == 403
        assert "This form cannot be used" in text_of(refused)
        assert "Open the rewards again" in text_of(refused)
    zh = post(client, step, fields | {"nonce": "", "lang": "zh"})
    assert "无法完成兑换" in text_of(zh)
    assert row_counts(catalog) == before


def test_a_bad_token_gets_the_401_page_on_every_view(client: FlaskClient, token: str) -> None:
    fields = form_of(open_rewards(client, token), "coffee")
    for answer in (
        client.get("/m/rewards", query_string={"token": "garbage"}),
        client.get("/m/rewards/mine", query_string={"token": token[:-1]}),
        client.get("/m/rewards/mine/1", query_string={"token": ""}),
        post(client, "confirm", fields | {"token": "garbage"}),
        post(client, "redeem", fields | {"token": ""}),
    ):
        assert answer.status_code == 401
        assert "This link has expired" in text_of(answer)


def test_another_members_redemption_is_not_found(
    client: FlaskClient, token: str, catalog: Database
) -> None:
    theirs = s.redeem_reward(catalog, program=PROGRAM, member="bob", reward="coffee")
    for redemption in (theirs.id, 999_999):
        page = client.get(f"/m/rewards/mine/{redemption}", query_string={"token": token})
        assert page.status_code == 404
        assert "We can't find this reward" in text_of(page)
        assert "CAFE-" not in page.get_data(as_text=True)
    mine = client.get("/m/rewards/mine", query_string={"token": token})
    assert by_testid(mine, "mine-empty").startswith("You have not redeemed any rewards yet.")


def test_my_rewards_are_paged_and_links_keep_the_token_and_language(
    client: FlaskClient, token: str, catalog: Database
) -> None:
    s.add_codes(
        catalog,
        program=PROGRAM,
        reward="coffee",
        codes=[f"MORE-{n:04d}" for n in range(12)],
        actor=STAFF,
    )
    earn(catalog, "alice", "o-3", 1_000_000)
    for _ in range(4):
        s.redeem_reward(catalog, program=PROGRAM, member="alice", reward="coffee", quantity=1)
    s.redeem_reward(catalog, program=PROGRAM, member="alice", reward="ten-off")
    for _ in range(7):
        s.redeem_reward(catalog, program=PROGRAM, member="alice", reward="coffee")
    first = client.get(
        "/m/rewards/mine",
        query_string={"token": token, "lang": "zh"},
        headers={"Accept-Language": "en"},
    )
    body = first.get_data(as_text=True)
    assert body.count('class="card redemption"') == 10
    older = re.search(r'href="([^"]*)" rel="next"', body)
    assert older
    link = html.unescape(older.group(1))
    assert token in link and "lang=zh" in link
    second = client.get(link)
    assert second.get_data(as_text=True).count('class="card redemption"') == 2
    assert "返回最新兑换" in text_of(second)
    tabs = re.findall(r'<nav class="tabs".*?</nav>', body, flags=re.S)[0]
    for href in re.findall(r'href="([^"]+)"', tabs):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(html.unescape(href)).query)
        assert query["token"] == [token] and query["lang"] == ["zh"]


def test_every_reason_and_state_has_words_in_both_languages() -> None:
    documented = re.findall(r"``(\w+)``", (RewardOffer.__doc__ or "").split("reasons")[-1])
    assert "insufficient_points" in documented and "retired" in documented
    for reason in documented:
        text = PAGE[f"reason_{reason}"]
        assert CHINESE.search(text.zh) and not CHINESE.search(text.en), reason
    for state in ("issued", "issued_item", "drawn", "packing", "shipped", "delivered", "cancelled"):
        assert CHINESE.search(PAGE[f"state_{state}"].zh), state
    for kind in ("coupon", "voucher", "item", "draw"):
        assert PAGE[f"kind_{kind}"].en and PAGE[f"kind_{kind}"].zh
