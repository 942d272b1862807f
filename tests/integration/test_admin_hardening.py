"""The console and its webhook under abuse: oversized and chunked bodies, bodies that are not
UTF-8, password guessing, replayed session cookies, weak secret keys, formula injection in
CSV exports, approvals split into small grants, another program's audit entries, inline
scripts and query strings that are not what a page expects.

Everything runs on the real app (its test client) or a real gunicorn on 127.0.0.1.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import secrets
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select as sql_select
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from admin import create_app
from admin.views.export import csv_cell
from admin.webhooks import init_stripe_webhook
from loyalty import services as s
from loyalty.db import Database
from loyalty.db.models import StripeEvent
from loyalty.domain.clock import FixedClock
from loyalty.errors import ConfigurationError
from loyalty.services import list_audit
from loyalty.services.console_users import set_password
from loyalty.stripe.webhook import StripeWebhook
from tests.integration import stripe_support as st
from tests.integration.helpers import PROGRAM, earn, make_program
from tests.integration.test_admin_support import PASSWORDS, build_app, csrf_token, login, post

MIB = 1024 * 1024


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


def _events(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(sql_select(func.count()).select_from(StripeEvent)).scalar_one())


# --- 1. request bodies are capped, whatever the framing -------------------------------------


def test_a_declared_body_above_the_limit_gets_413_before_it_is_read(app: Flask) -> None:
    client = app.test_client()
    big = b"x" * (MIB + 1)
    hook = client.post("/webhooks/stripe", data=big, headers={"Stripe-Signature": "t=1,v1=0"})
    assert hook.status_code == 413
    assert hook.json is not None and hook.json["status"] == "rejected"
    assert "too large" in hook.json["message"]
    page = client.post("/login", data={"username": "a" * (MIB + 1), "password": "x"})
    assert page.status_code == 413
    assert "larger than the 1,048,576 bytes" in page.get_data(as_text=True)


def test_the_body_limit_is_configurable(db: Database) -> None:
    app = build_app(db, JIFEN_MAX_BODY_BYTES="4096")
    assert app.config["MAX_CONTENT_LENGTH"] == 4096
    response = app.test_client().post("/login", data={"username": "a" * 5000})
    assert response.status_code == 413
    with pytest.raises(ConfigurationError, match="JIFEN_MAX_BODY_BYTES"):
        build_app(db, seed=False, JIFEN_MAX_BODY_BYTES="lots")


SERVE = """
import sys
from gunicorn.app.base import BaseApplication
from admin import create_app

class Server(BaseApplication):
    def load_config(self):
        self.cfg.set("bind", sys.argv[1])
        self.cfg.set("workers", 1)
        self.cfg.set("timeout", 30)
        self.cfg.set("loglevel", "warning")

    def load(self):
        return create_app()

Server().run()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr and process.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start")


def _worker_pid(master: int) -> int:
    """The pid of the gunicorn master's one worker: the master binds the port before it forks
    its worker, so on a busy machine the port answers a moment before the worker exists."""
    children: list[str] = []
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            break
        time.sleep(0.1)
    assert len(children) == 1, f"gunicorn's master has {len(children)} workers, not 1"
    return int(children[0])


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found
    return int(found.group(1))


@pytest.fixture
def gunicorn_url(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    """A real gunicorn (one sync worker) serving the console and its webhook on loopback:
    (host, port, worker pid)."""
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    db = Database.from_url(url)
    make_program(db)
    db.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "JIFEN_DATABASE_URL": url,
        "JIFEN_PROGRAM": PROGRAM,
        "JIFEN_SECRET_KEY": secrets.token_urlsafe(32),
        "JIFEN_STRIPE_WEBHOOK_SECRET": st.SECRET,
    }
    env.pop("JIFEN_REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(port, process)
        yield "127.0.0.1", port, _worker_pid(process.pid)
    finally:
        process.terminate()
        process.wait(10)


def _send_chunked(host: str, port: int, path: str, total: int) -> tuple[bytes, int]:
    """POST ``total`` bytes as a chunked body, 64 KiB a chunk, reading the answer as soon as
    there is one: (the answer's bytes, how many body bytes were sent by then)."""
    chunk = b"{" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    answer = b""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Stripe-Signature: t=1,v1=0\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(frame)
                sent += len(chunk)
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        try:
            while b"\r\n\r\n" not in answer or len(answer) < 200:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def test_a_chunked_body_is_cut_off_while_it_streams_in_under_gunicorn(
    gunicorn_url: tuple[str, int, int],
) -> None:
    host, port, worker = gunicorn_url
    warm, _ = _send_chunked(host, port, "/webhooks/stripe", 65536)  # a small body: 400
    assert warm.startswith(b"HTTP/1.1 400"), warm[:200]
    before = _peak_rss_kib(worker)
    total = 20 * MIB
    answer, sent = _send_chunked(host, port, "/webhooks/stripe", total)
    # Only the status line is certain to arrive: the server closes with body bytes unread, so
    # the kernel may reset the connection before the answer's body is read (the message
    # itself is checked with a declared Content-Length, which is not racy).
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # the answer came while the body was still streaming: the server stopped reading at the
    # limit instead of taking in 20 MiB first, and its memory did not grow with the body
    assert sent < total
    assert _peak_rss_kib(worker) - before < 16 * 1024
    console, _ = _send_chunked(host, port, "/login", total)
    assert console.startswith(b"HTTP/1.1 413"), console[:200]


# --- 2. a body that is not UTF-8 ------------------------------------------------------------


def test_a_webhook_body_that_is_not_utf8_is_refused_with_400_and_writes_nothing(
    app: Flask, db: Database
) -> None:
    payload = b"\xff\xfe{\x00}" + st.body(st.payment_intent_succeeded("pi_utf", 1000))
    response = app.test_client().post(
        "/webhooks/stripe", data=payload, headers={"Stripe-Signature": st.sign(payload)}
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json is not None and response.json["status"] == "rejected"
    assert _events(db) == 0


# --- 3. sign-in throttling ------------------------------------------------------------------


def _login(
    client: FlaskClient, token: str, username: str, password: str, address: str
) -> TestResponse:
    return client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_failed_sign_ins_are_throttled_per_account_even_for_the_right_password(
    app: Flask, db: Database
) -> None:
    client = app.test_client()
    token = csrf_token(client)
    for _ in range(5):
        assert _login(client, token, "admin", "wrong-password", "10.0.0.1").status_code == 401
    throttled = _login(client, token, "admin", PASSWORDS["admin"], "10.0.0.2")
    assert throttled.status_code == 429
    text = throttled.get_data(as_text=True)
    assert "Too many failed sign-ins for this account." in text
    assert re.search(
        r"Try again in \d+ seconds \(at \d\d:\d\d:\d\d Asia/Shanghai\)", text
    )  # local time
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    # the account's name in another case is the same account; other accounts still sign in
    assert _login(client, token, " ADMIN ", PASSWORDS["admin"], "10.0.0.3").status_code == 429
    assert _login(client, token, "operations", PASSWORDS["operations"], "10.0.0.1").status_code == (
        302
    )
    failures = list_audit(db, action="login.failed").items
    assert len(failures) == 5
    assert {f.after["reason"] for f in failures if f.after} == {"wrong password"}
    assert {f.actor for f in failures} == {"address 10.0.0.1"}
    assert {f.target for f in failures} == {"user admin"}


def test_failed_sign_ins_are_throttled_per_address(app: Flask, db: Database) -> None:
    client = app.test_client()
    token = csrf_token(client)
    for n in range(20):
        assert _login(client, token, f"guess-{n}", "x" * 8, "10.0.0.9").status_code == 401
    blocked = _login(client, token, "viewer", PASSWORDS["viewer"], "10.0.0.9")
    assert blocked.status_code == 429
    assert "Too many failed sign-ins from your address." in blocked.get_data(as_text=True)
    assert _login(client, token, "viewer", PASSWORDS["viewer"], "10.0.0.10").status_code == 302
    reasons = {f.after["reason"] for f in list_audit(db, action="login.failed").items if f.after}
    assert reasons == {"unknown username"}


def test_sixty_wrong_passwords_then_the_right_one_does_not_sign_in(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client)
    statuses = [
        _login(client, token, "admin", f"guess-{n}", "10.1.1.1").status_code for n in range(60)
    ]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert _login(client, token, "admin", PASSWORDS["admin"], "10.1.1.1").status_code == 429


# --- 4. sessions end on sign-out and on a new password --------------------------------------


def test_a_cookie_copied_before_sign_out_gets_the_login_page(app: Flask) -> None:
    client = app.test_client()
    token = login(client, "operations")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert post(client, "/logout", token).status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", cookie.value)
    response = replay.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_new_password_ends_the_sessions_signed_in_with_the_old_one(
    app: Flask, db: Database
) -> None:
    first, other = app.test_client(), app.test_client()
    login(first, "viewer")
    login(other, "admin")
    assert first.get("/admin/").status_code == 200
    set_password(db, username="viewer", password="a-new-password-1")
    response = first.get("/admin/members/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert other.get("/admin/").status_code == 200  # another account's session goes on
    again = app.test_client()
    token = csrf_token(again)
    signed_in = again.post(
        "/login",
        data={"csrf_token": token, "username": "viewer", "password": "a-new-password-1"},
    )
    assert signed_in.status_code == 302
    assert again.get("/admin/").status_code == 200


# --- 8. the secret key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["x", "short-but-not-32-chars", "a" * 64, "abababababababababababababababab"],
)
def test_a_weak_secret_key_is_refused_at_startup(db: Database, key: str) -> None:
    with pytest.raises(ConfigurationError, match=r"secrets\.token_urlsafe\(32\)"):
        create_app({"JIFEN_DATABASE": db, "JIFEN_PROGRAM": PROGRAM, "SECRET_KEY": key})


def test_a_weak_secret_key_from_the_environment_is_refused(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIFEN_SECRET_KEY", "k")
    with pytest.raises(ConfigurationError, match="too weak"):
        create_app({"JIFEN_DATABASE": db, "JIFEN_PROGRAM": PROGRAM})


def test_a_random_key_is_accepted_and_the_demo_makes_its_own(db: Database) -> None:
    make_program(db)
    strong = create_app({"JIFEN_DATABASE": db, "SECRET_KEY": secrets.token_urlsafe(32)})
    assert strong.test_client().get("/login").status_code == 200
    assert create_app({"JIFEN_DATABASE": db, "SECRET_KEY": secrets.token_hex(16)})
    demo = create_app({"JIFEN_DATABASE": db, "JIFEN_DEMO": True})
    assert len(demo.config["SECRET_KEY"]) >= 32


# --- 5. CSV exports: formula injection and a BOM --------------------------------------------

DANGEROUS = ['=HYPERLINK("http://evil.example")', "+1+2", "-2-3", "@SUM(A1)", "＝1+1"]


def _csv(client: FlaskClient, name: str) -> tuple[str, list[list[str]]]:
    response = client.get(f"/admin/export/{name}.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # the UTF-8 byte order mark
    text = raw.decode("utf-8-sig")
    return text, list(csv.reader(io.StringIO(text)))


def test_csv_cells_that_could_be_formulas_are_escaped_and_numbers_stay_numbers(
    app: Flask, db: Database
) -> None:
    for member in [*DANGEROUS, "会员-张三"]:
        s.enrol_member(db, program=PROGRAM, external_id=member)
    s.adjust_points(
        db, program=PROGRAM, member="-2-3", points=100, reason="welcome", adjustment_id="a1"
    )
    s.adjust_points(
        db, program=PROGRAM, member="-2-3", points=-30, reason="correction", adjustment_id="a2"
    )
    client = app.test_client()
    login(client, "operations")
    text, rows = _csv(client, "members")
    ids = [row[0] for row in rows[1:]]
    for member in DANGEROUS:
        assert "'" + member in ids, (member, ids)
        assert member not in ids
    assert "会员-张三" in ids and "会员-张三" in text
    _, ledger = _csv(client, "ledger")
    header = ledger[0]
    deltas = [row[header.index("available_delta")] for row in ledger[1:]]
    members = {row[header.index("member")] for row in ledger[1:]}
    assert "-30" in deltas and "100" in deltas  # negative numbers are not escaped
    assert members == {"'-2-3"}


def test_lots_show_the_last_day_their_points_can_be_used(app: Flask, db: Database) -> None:
    """Month-end expiry ends at the local midnight that starts 1 March: people read 28 February."""
    s.publish_rules(
        db, program=PROGRAM, rules={"base_ratio": "1", "expiry": {"months": 3, "month_end": True}}
    )
    s.earn_purchase(
        db, program=PROGRAM, member="alice", order_id="o-1", currency="CNY", amount_minor=10_000
    )
    client = app.test_client()
    login(client, "operations")
    page = client.get("/admin/members/member?id=alice").get_data(as_text=True)
    assert "2027-02-28" in page and "2027-03-01" not in page
    _, rows = _csv(client, "lots")
    header = rows[0]
    assert header[-1] == "last_day"
    assert [row[-1] for row in rows[1:]] == ["2027-02-28"]
    assert rows[1][header.index("expires_at")] == "2027-03-01T00:00:00+08:00"  # the zone's


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("＠x", "'＠x"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (-5, -5),
        (None, ""),
    ],
)
def test_csv_cell_escaping_rule(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


# --- 6. approvals: the threshold holds over a day's running total ---------------------------


def test_ten_grants_of_500_by_one_person_do_not_pass_a_500_threshold(
    app: Flask, db: Database
) -> None:
    client = app.test_client()
    token = login(client, "operations")
    for n in range(10):
        post(
            client,
            "/admin/adjustments/new",
            token,
            member="alice",
            points=500,
            reason=f"goodwill {n}",
        )
    made = s.list_adjustment_requests(db, program=PROGRAM, member="alice", limit=50)
    assert sorted(r.status for r in made) == ["applied"] + ["pending"] * 9
    assert s.balance(db, program=PROGRAM, member="alice").available == 500
    page = client.get("/admin/adjustments/").get_data(as_text=True)
    assert "Approve" not in page  # nobody approves their own
    other = app.test_client()
    other_token = login(other, "operations2")
    assert "Approve" in other.get("/admin/adjustments/").get_data(as_text=True)
    pending = next(r for r in made if r.status == "pending")
    post(other, "/admin/adjustments/approve", other_token, request_id=pending.id)
    assert s.balance(db, program=PROGRAM, member="alice").available == 1000


def test_the_running_total_is_per_requester_member_and_local_day(
    db: Database, clock: FixedClock
) -> None:
    build_app(db)  # the program (Asia/Shanghai), alice, bob and the users

    def ask(member: str, points: int, who: str = "operations") -> str:
        made = s.request_adjustment(
            db,
            program=PROGRAM,
            member=member,
            points=points,
            reason="test",
            requested_by=who,
            threshold=500,
        )
        return made.status

    assert ask("alice", 300) == "applied"
    assert ask("alice", -300) == "pending"  # a deduction counts by its size: 600 > 500
    assert ask("alice", 200) == "applied"  # 500 exactly
    assert ask("bob", 500) == "applied"  # another member
    assert ask("alice", 500, who="operations2") == "applied"  # another requester
    clock.set(dt.datetime(2026, 11, 21, 15, 59, tzinfo=dt.UTC))  # 23:59 in Shanghai
    assert ask("alice", 1) == "pending"
    clock.set(dt.datetime(2026, 11, 21, 16, 0, tzinfo=dt.UTC))  # a new day in Shanghai
    assert ask("alice", 500) == "applied"
    assert s.balance(db, program=PROGRAM, member="alice").available == 1500


# --- 7. the audit log is scoped to the console's program ------------------------------------


def test_the_audit_page_shows_this_programs_entries_and_never_another_programs(
    app: Flask, db: Database
) -> None:
    make_program(db, "other")
    s.audit(db, actor="eve", action="rules.publish", target="other-secret", program="other")
    s.audit(db, actor="ann", action="rules.publish", target="shop-visible", program=PROGRAM)
    client = app.test_client()
    login(client, "viewer")
    page = client.get("/admin/audit/").get_data(as_text=True)
    assert "shop-visible" in page
    assert "user viewer" in page  # console accounts belong to no program: shown
    assert "other-secret" not in page
    filtered = client.get("/admin/audit/?actor=eve").get_data(as_text=True)
    assert "other-secret" not in filtered
    scoped = list_audit(db, program=PROGRAM)
    everything = list_audit(db)
    assert everything.total == scoped.total + 1
    assert {e.program for e in scoped.items} <= {PROGRAM, None}


# --- 10. query strings a page does not expect get 400, never 500 ----------------------------

BAD_QUERIES = [
    "/admin/members/?q=%00",
    "/admin/members/?q=ali%E2%80%8Bce",  # a zero-width space
    "/admin/members/?page=99999999999999999999",
    "/admin/members/?page=-1",
    "/admin/members/?page=%C2%B2",  # a superscript two: str.isdigit() says yes, int() says no
    "/admin/members/?page=abc",
    "/admin/members/member?id=%00",
    "/admin/members/member?id=alice&cursor=99999999999999999999999999",
    "/admin/members/member?id=alice&cursor=%C2%B2",
    "/admin/events/?q=%00",
    "/admin/events/?type=%00",
    "/admin/events/?status=%00",
    "/admin/events/?page=99999999999999999999",
    "/admin/events/event?id=%00",
    "/admin/audit/?actor=%00",
    "/admin/audit/?action=%E2%80%AE",  # a right-to-left override
    "/admin/audit/?target=%00",
    "/admin/audit/?page=99999999999999999999",
    "/admin/jobs/?days=%C2%B2",
    "/admin/jobs/?days=" + "9" * 5000,
    "/admin/adjustments/?member=%00",
]


@pytest.mark.parametrize("url", BAD_QUERIES)
def test_a_query_string_a_page_does_not_expect_gets_a_readable_400(app: Flask, url: str) -> None:
    client = app.test_client()
    login(client, "admin")
    response = client.get(url)
    assert response.status_code == 400, (url, response.status_code)
    text = response.get_data(as_text=True)
    if url.startswith("/admin/jobs/"):  # the jobs page stays, the refusal beside its field
        assert "Not shown: days must be a whole number" in text
    else:
        assert "That request could not be understood" in text
    assert "Traceback" not in text


def test_a_forecast_horizon_out_of_range_is_refused_not_clamped(app: Flask) -> None:
    client = app.test_client()
    login(client, "admin")
    response = client.get("/admin/jobs/?days=1000")
    assert response.status_code == 400
    assert "days must be a whole number from 1 to 366" in response.get_data(as_text=True)


def test_good_query_strings_still_work(app: Flask) -> None:
    client = app.test_client()
    login(client, "admin")
    for url in (
        "/admin/members/?q=ali",
        "/admin/members/?q=&page=1",
        "/admin/members/?page=2",
        "/admin/members/member?id=alice&cursor=",
        "/admin/events/?status=parked&type=payment&q=&page=1",
        "/admin/audit/?action=user.&actor=&target=",
        "/admin/jobs/?days=366",
        "/admin/adjustments/?member=alice",
    ):
        response = client.get(url)
        assert response.status_code in (200, 302), (url, response.status_code)


@pytest.mark.parametrize("target", ["/\\evil.example/", "//evil.example", "/%00x", "/\tx"])
def test_sign_in_and_form_redirects_stay_on_this_site(app: Flask, target: str) -> None:
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": "operations",
            "password": PASSWORDS["operations"],
            "next": target.replace("%00", "\x00"),
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    token = csrf_token(client, "/admin/")
    back = target.replace("%00", "\x00")
    grant = {"member": "alice", "points": 5, "reason": "a small grant", "back": back}
    moved = post(client, "/admin/adjustments/new", token, **grant)
    assert moved.status_code == 302
    assert moved.headers["Location"] == "/admin/adjustments/"


# --- 9. the Content-Security-Policy allows no inline script or style ------------------------

INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|\sstyle\s*=", re.IGNORECASE)


def test_the_csp_drops_unsafe_inline_and_no_page_needs_it(app: Flask, db: Database) -> None:
    client = app.test_client()
    login_page = client.get("/login")
    policy = login_page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    login(client, "admin")
    earn(db, "alice", "o-csp", 5000)
    for url in (
        "/login",
        "/admin/",
        "/admin/rules/",
        "/admin/members/",
        "/admin/members/member?id=alice",
        "/admin/adjustments/",
        "/admin/jobs/",
        "/admin/events/",
        "/admin/audit/",
        "/admin/export/",
        "/no/such/page",
    ):
        response = client.get(url)
        html = response.get_data(as_text=True)
        assert not INLINE.findall(html), (url, INLINE.findall(html))
        assert response.headers["Content-Security-Policy"] == policy


def test_throttling_counts_in_redis_when_configured_and_in_memory_when_it_is_down(
    db: Database,
) -> None:
    # nothing listens on port 1: the counts fall back to memory and still throttle
    app = build_app(db, JIFEN_REDIS_URL="redis://127.0.0.1:1/15")
    (limiter,) = app.extensions["limiter"]
    assert type(limiter.storage).__name__ == "RedisStorage"
    client = app.test_client()
    token = csrf_token(client)
    statuses = [_login(client, token, "admin", "wrong", "10.2.2.2").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_a_username_with_a_nul_is_a_failed_sign_in_audited_escaped(
    app: Flask, db: Database
) -> None:
    client = app.test_client()
    token = csrf_token(client)
    assert _login(client, token, "ad\x00min", "whatever", "10.3.3.3").status_code == 401
    (failure,) = list_audit(db, action="login.failed").items
    assert failure.target == "user 'ad\\x00min'"
    assert failure.after is not None and failure.after["reason"] == "unknown username"


def test_the_webhook_blueprint_caps_a_chunked_body_in_any_app(db: Database) -> None:
    """Hosted in a plain Flask app (no console, no MAX_CONTENT_LENGTH), on werkzeug's server."""
    make_program(db)
    plain = Flask("shop")
    init_stripe_webhook(plain, StripeWebhook(db, program=PROGRAM, secret=st.SECRET))
    server = make_server("127.0.0.1", 0, plain, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        answer, sent = _send_chunked("127.0.0.1", server.server_port, "/webhooks/stripe", 20 * MIB)
    finally:
        server.shutdown()
        thread.join(5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"too large for a Stripe event" in answer
    assert sent < 20 * MIB
    assert _events(db) == 0
