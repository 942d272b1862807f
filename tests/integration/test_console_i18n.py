"""The console speaks Chinese or English: the person's choice (``?lang=``, kept for
the session and on their account, so it follows them to another browser), else the
browser's ``Accept-Language`` read the way Chinese browsers send it, else English; the page's
``<html lang>``, the navigation, the sign-in page, roles and flashes follow."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from loyalty.db import Database
from loyalty.errors import InvalidInput
from loyalty.services.audit import list_audit
from loyalty.services.console_users import list_users, set_language
from tests.integration.test_admin_support import build_app, login

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
CHINESE_BROWSER = "zh-CN,zh;q=0.9,en;q=0.5"


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


def page(app: Flask, path: str, **headers: str) -> str:
    return app.test_client().get(path, headers=headers).get_data(as_text=True)


def test_english_is_the_default(app: Flask) -> None:
    html = page(app, "/login")
    assert '<html lang="en">' in html and ">Sign in</button>" in html
    assert "简体中文" in html  # the way to switch


@pytest.mark.parametrize("accept", [CHINESE_BROWSER, "zh-TW", "zh-Hans-CN", "zh", "fr,zh;q=0.1"])
def test_a_chinese_browser_gets_chinese(app: Flask, accept: str) -> None:
    html = page(app, "/login", **{"Accept-Language": accept})
    assert '<html lang="zh-CN">' in html and ">登录</button>" in html and "English" in html


def test_an_english_or_unknown_browser_gets_english(app: Flask) -> None:
    for accept in ("en-GB,en;q=0.9,zh;q=0.5", "fr-FR", "*", "xx-invalid-tag"):
        assert ">Sign in</button>" in page(app, "/login", **{"Accept-Language": accept})


def test_the_choice_is_kept_for_the_session(app: Flask) -> None:
    client = app.test_client()
    client.get("/login?lang=zh", headers={"Accept-Language": "en"})
    token = login(client, "admin")
    html = client.get("/admin/members/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(r">\s*会员\s*</a>", html)  # the navigation
    assert "退出登录" in html and "管理员" in html  # the button, the role
    client.get("/admin/?lang=en")
    assert "Sign out" in client.get("/admin/members/").get_data(as_text=True)
    assert token


def test_a_flash_is_in_the_persons_language(app: Flask) -> None:
    client = app.test_client()
    client.get("/login?lang=zh")
    html = client.post("/login", data={"username": "nobody", "password": "x"}).get_data(
        as_text=True
    )
    assert "CSRF" in html or "用户名或密码错误" in html


def test_the_choice_follows_the_person_to_another_browser(app: Flask, db: Database) -> None:
    first = app.test_client()
    login(first, "marketing")
    first.get("/admin/?lang=zh", headers={"Accept-Language": "en"})
    (kept,) = [u for u in list_users(db) if u.username == "marketing"]
    assert kept.locale == "zh_Hans"
    (changed,) = list_audit(db, action="user.set_language").items
    assert (changed.actor, changed.target) == ("marketing", "user marketing")
    other = app.test_client()  # another browser, in English
    login(other, "marketing")
    html = other.get("/admin/members/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and "退出登录" in html
    other.get("/admin/?lang=en")
    (kept,) = [u for u in list_users(db) if u.username == "marketing"]
    assert kept.locale == "en"


def test_a_language_chosen_before_signing_in_is_kept_on_an_account_without_one(
    app: Flask, db: Database
) -> None:
    client = app.test_client()
    client.get("/login?lang=zh", headers={"Accept-Language": "en"})
    login(client, "operations")
    (kept,) = [u for u in list_users(db) if u.username == "operations"]
    assert kept.locale == "zh_Hans"


def test_an_unknown_language_is_refused_and_changes_nothing(db: Database, app: Flask) -> None:
    with pytest.raises(InvalidInput, match="zh_Hans or en"):
        set_language(db, username="admin", locale="fr", actor="admin")
    (kept,) = [u for u in list_users(db) if u.username == "admin"]
    assert kept.locale is None
