"""The remote SDK retries what may not have been delivered, and a retried write is applied once.

* A server process that commits an earn and dies before answering is replaced on the same
  listening socket; the SDK's retry (with no idempotency key from the caller: the server
  derives ``earn:<order_id>`` again) is answered as a replay, and the database holds one earn.
* 503 and 429 answers from a real loopback server are retried with the same request, and
  ``Retry-After`` is honoured; after the last attempt the error is raised.
* A server that cannot be reached gives :class:`~loyalty.errors.ServerUnreachable` after a
  bounded number of attempts.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from api import create_api_app
from loyalty.db import Database
from loyalty.db.models import Earning, Operation
from loyalty.errors import RateLimited, ServerUnreachable
from sdk import Jifen
from sdk._remote import RetryPolicy
from tests.http_api.conftest import SECRET, new_key
from tests.http_api.live_server import live_server
from tests.integration.helpers import PROGRAM, make_program

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ROOT = Path(__file__).resolve().parents[2]
EARN_PATH = "/v1/earnings/purchase"

# The API on an inherited listening socket. With "crash", the first earn runs to its commit
# and the process dies before a byte of the answer is sent.
SERVER_SCRIPT = f"""
import os, sys
from werkzeug.serving import make_server
from api import create_api_app

url, fd, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
app = create_api_app({{
    "JIFEN_DATABASE_URL": url, "SECRET_KEY": {SECRET!r},
    "RATELIMIT_ENABLED": False, "JIFEN_REDIS_URL": None,
}})

def crash_after_first_earn(environ, start_response):
    if mode == "crash" and environ["PATH_INFO"] == {EARN_PATH!r}:
        body = app(environ, lambda status, headers, exc_info=None: lambda data: None)
        b"".join(body)  # the view ran in full: its unit of work committed
        os._exit(1)
    return app(environ, start_response)

make_server("127.0.0.1", 0, crash_after_first_earn, threaded=True, fd=fd).serve_forever()
"""


# --- a server that dies mid-request -------------------------------------------------------


class RestartingServer:
    """The API in a child process on a listening socket this test holds, so the port stays
    open while the child dies: a retry waits in the socket's backlog for the next child,
    which a thread starts as soon as the first one has died."""

    def __init__(self, database_url: str, script: Path) -> None:
        self.database_url = database_url
        self.script = script
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.set_inheritable(True)
        self.children: list[subprocess.Popen[bytes]] = []
        self.restarter = threading.Thread(target=self._restart_when_dead, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def start(self) -> None:
        self.children.append(self._spawn("crash"))
        self.restarter.start()

    def _spawn(self, mode: str) -> subprocess.Popen[bytes]:
        fd = self.listener.fileno()
        return subprocess.Popen(
            [sys.executable, str(self.script), self.database_url, str(fd), mode],
            pass_fds=(fd,),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _restart_when_dead(self) -> None:
        self.children[0].wait()
        self.children.append(self._spawn("serve"))

    def stop(self) -> None:
        for child in self.children:
            child.kill()
            child.wait()
        self.listener.close()


@pytest.fixture
def restarting_server(database_url: str, tmp_path: Path) -> Iterator[RestartingServer]:
    db = Database.from_url(database_url)
    make_program(db)
    db.dispose()
    script = tmp_path / "crashing_api.py"
    script.write_text(SERVER_SCRIPT)
    server = RestartingServer(database_url, script)
    try:
        yield server
    finally:
        server.stop()


def test_a_server_killed_after_the_commit_earns_once(
    restarting_server: RestartingServer, database_url: str
) -> None:
    db = Database.from_url(database_url)
    try:
        key = new_key(db, "admin")
        restarting_server.start()
        with Jifen(restarting_server.url, api_key=key, program=PROGRAM, timeout=60) as jifen:
            jifen.enrol(member="alice")
            result = jifen.earn(member="alice", order_id="o-crash", amount_minor=12_345)
            balance = jifen.balance(member="alice")
        first = restarting_server.children[0]
        assert first.poll() == 1  # the first server died in the earn, as planned
        assert len(restarting_server.children) == 2
        assert result.replayed is True
        assert result.points_granted == 123
        assert balance.available == balance.lifetime_earned == 123
        with db.read() as conn:
            earnings = conn.execute(
                select(func.count()).where(Earning.__table__.c.order_id == "o-crash")
            ).scalar_one()
            operations = conn.execute(
                select(func.count()).where(Operation.__table__.c.key == "earn:o-crash")
            ).scalar_one()
        assert (earnings, operations) == (1, 1)
    finally:
        db.dispose()


# --- answers worth retrying -----------------------------------------------------------------


class Flaky:
    """Answers the first requests to ``path`` with the given statuses, then lets them through
    to ``app``; records each attempt's ``Idempotency-Key`` and body."""

    def __init__(
        self, app: WSGIApplication, path: str, answers: Iterable[tuple[int, dict[str, str]]]
    ) -> None:
        self.app = app
        self.path = path
        self.answers = list(answers)
        self.attempts: list[tuple[str | None, bytes]] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] != self.path:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        self.attempts.append((environ.get("HTTP_IDEMPOTENCY_KEY"), body))
        if not self.answers:
            return self.app(environ, start_response)
        status, headers = self.answers.pop(0)
        problem = b'{"code": "rate_limited", "detail": "slow down", "details": {}}'
        if status != 429:
            problem = b'{"code": "database_unavailable", "detail": "down", "details": {}}'
        start_response(
            f"{status} Try Later",
            [("Content-Type", "application/problem+json"), *headers.items()],
        )
        return [problem]


def flaky_api(db: Database, answers: Iterable[tuple[int, dict[str, str]]]) -> Flaky:
    app = create_api_app(
        {
            "JIFEN_DATABASE": db,
            "SECRET_KEY": SECRET,
            "RATELIMIT_ENABLED": False,
            "JIFEN_REDIS_URL": None,
        }
    )
    return Flaky(app.wsgi_app, EARN_PATH, answers)


def earnings_of(db: Database, order_id: str) -> int:
    with db.read() as conn:
        query = select(func.count()).where(Earning.__table__.c.order_id == order_id)
        return int(conn.execute(query).scalar_one())


def test_503s_are_retried_with_the_same_request(program_db: Database) -> None:
    flaky = flaky_api(program_db, [(503, {}), (502, {}), (504, {})])
    with (
        live_server(flaky) as url,
        Jifen(url, api_key=new_key(program_db), program=PROGRAM) as jifen,
    ):
        jifen.enrol(member="alice")
        result = jifen.earn(member="alice", order_id="o-1", amount_minor=10_000)
    assert result.points_granted == 100 and not result.replayed
    assert len(flaky.attempts) == 4
    assert len(set(flaky.attempts)) == 1  # the same body every time
    assert flaky.attempts[0][0] is None  # the server derives the key: earn:o-1
    assert earnings_of(program_db, "o-1") == 1


def test_429_is_retried_after_retry_after_with_the_callers_key(program_db: Database) -> None:
    flaky = flaky_api(program_db, [(429, {"Retry-After": "1"})])
    with (
        live_server(flaky) as url,
        Jifen(url, api_key=new_key(program_db), program=PROGRAM) as jifen,
    ):
        jifen.enrol(member="alice")
        result = jifen.earn(
            member="alice", order_id="o-1", amount_minor=10_000, idempotency_key="pay-1"
        )
    assert result.points_granted == 100
    assert [key for key, _body in flaky.attempts] == ["pay-1", "pay-1"]


def test_after_the_last_attempt_the_error_is_raised_and_nothing_is_written(
    program_db: Database,
) -> None:
    attempts = RetryPolicy().attempts
    flaky = flaky_api(program_db, [(429, {"Retry-After": "0"})] * attempts)
    with (
        live_server(flaky) as url,
        Jifen(url, api_key=new_key(program_db), program=PROGRAM) as jifen,
    ):
        jifen.enrol(member="alice")
        with pytest.raises(RateLimited):
            jifen.earn(member="alice", order_id="o-1", amount_minor=10_000)
    assert len(flaky.attempts) == attempts
    assert earnings_of(program_db, "o-1") == 0


class Stalled:
    """Holds the first request to ``path`` until :attr:`release` is set, then runs it; the
    others pass at once. :attr:`finished` is set when the held one has been answered."""

    def __init__(self, app: WSGIApplication, path: str) -> None:
        self.app = app
        self.path = path
        self.release = threading.Event()
        self.finished = threading.Event()
        self.held = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] != self.path or self.held:
            return self.app(environ, start_response)
        self.held = True
        self.release.wait(timeout=60)
        try:
            return list(self.app(environ, start_response))
        finally:
            self.finished.set()


def test_a_read_timeout_is_not_retried_and_the_write_can_be_retried_by_its_key(
    program_db: Database,
) -> None:
    api = create_api_app(
        {"JIFEN_DATABASE": program_db, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False}
    )
    stalled = Stalled(api.wsgi_app, EARN_PATH)
    key = new_key(program_db)
    with live_server(stalled) as url, Jifen(url, api_key=key, program=PROGRAM) as jifen:
        jifen.enrol(member="alice")
        impatient = Jifen(url, api_key=key, program=PROGRAM, timeout=1)
        with impatient, pytest.raises(ServerUnreachable) as timed_out:
            impatient.earn(member="alice", order_id="o-1", amount_minor=10_000)
        assert timed_out.value.details == {"url": url, "attempts": 1, "reason": "ReadTimeout"}
        again = jifen.earn(member="alice", order_id="o-1", amount_minor=10_000)
        stalled.release.set()
        assert stalled.finished.wait(timeout=60)  # the stalled attempt ran: as a replay
        assert jifen.earn(member="alice", order_id="o-1", amount_minor=10_000).replayed
    assert again.points_granted == 100 and not again.replayed
    assert earnings_of(program_db, "o-1") == 1


# --- a server that cannot be reached -------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_server_gives_server_unreachable_after_bounded_attempts() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ServerUnreachable) as refused:
        Jifen(url, api_key="jfn_sk_anything", program=PROGRAM)
    assert refused.value.details["attempts"] == RetryPolicy().attempts
    assert refused.value.code == "server_unreachable"
    assert "same idempotency key" in refused.value.message


def test_a_server_gone_after_construction_gives_server_unreachable(program_db: Database) -> None:
    api = create_api_app(
        {
            "JIFEN_DATABASE": program_db,
            "SECRET_KEY": SECRET,
            "RATELIMIT_ENABLED": False,
            "JIFEN_REDIS_URL": None,
        }
    )
    with live_server(api) as url:
        jifen = Jifen(url, api_key=new_key(program_db), program=PROGRAM)
    with jifen, pytest.raises(ServerUnreachable) as refused:
        jifen.earn(member="alice", order_id="o-1", amount_minor=100)
    assert refused.value.details["attempts"] == RetryPolicy().attempts


# --- the policy -----------------------------------------------------------------------------


def test_the_retry_delays_are_jittered_and_capped() -> None:
    policy = RetryPolicy(attempts=4, base_delay=0.25, max_delay=5.0)
    for attempt in (1, 2, 3):
        for _ in range(50):
            assert 0.0 <= policy.delay(attempt) <= 0.25 * 2 ** (attempt - 1)
    assert policy.delay(1, "3") == 3.0
    assert policy.delay(1, "120") == 5.0  # capped
    assert policy.delay(1, "-4") == 0.0
    past = email.utils.format_datetime(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), usegmt=True)
    assert policy.delay(1, past) == 0.0
    assert 0.0 <= policy.delay(1, "soon") <= 0.25  # unreadable: the backoff
