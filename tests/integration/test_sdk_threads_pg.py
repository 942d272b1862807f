"""One SDK client shared by eight threads on PostgreSQL, as a web application shares it.

Every thread earns, holds and then captures or releases for random members. At the end the
ledger verifies and every member's balance equals what the returned results add up to.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from helpers import PROGRAM, make_program

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from sdk import InsufficientPoints, Jifen

pytestmark = pytest.mark.postgres

THREADS = 8
MEMBERS = [f"m{i:02d}" for i in range(20)]
OPERATIONS = 50


@pytest.fixture
def shared(pg_db: Database, pg_url: str, clock: FixedClock) -> Iterator[Jifen]:
    """One client of a fresh ``shop`` program, with twenty members."""
    make_program(pg_db)
    with Jifen(pg_url, program=PROGRAM, clock=clock) as jifen:
        for member in MEMBERS:
            jifen.enrol(member=member)
        yield jifen


def test_eight_threads_share_one_client(shared: Jifen, pg_db: Database) -> None:
    earned: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    tally = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        rng = random.Random(thread)
        start.wait()
        for n in range(OPERATIONS):
            member = rng.choice(MEMBERS)
            order = f"t{thread}-o{n}"
            if rng.random() < 0.5:
                result = shared.earn(
                    member=member, order_id=order, amount_minor=rng.randint(100, 50_000)
                )
                with tally:
                    earned[member] += result.points_granted
                    outcomes["earn"] += 1
                continue
            points = rng.randint(1, 150)
            try:
                shared.hold(
                    member=member, order_id=order, points=points, order_total_minor=1_000_000
                )
            except InsufficientPoints:
                with tally:
                    outcomes["insufficient"] += 1
                continue
            if rng.random() < 0.5:
                captured = shared.capture(order_id=order)
                assert captured.status == "captured"
                with tally:
                    spent[member] += captured.points
                    outcomes["capture"] += 1
            else:
                assert shared.release(order_id=order).status == "released"
                with tally:
                    outcomes["release"] += 1

    def run(thread: int) -> None:
        try:
            work(thread)
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    assert not errors, errors
    assert sum(outcomes.values()) == THREADS * OPERATIONS
    assert outcomes["capture"] and outcomes["release"] and outcomes["earn"]

    report = s.verify_ledger(pg_db)
    assert report.ok, [c for c in report.checks if not c.ok]
    for member in MEMBERS:
        balance = shared.balance(member=member)
        assert balance.lifetime_earned == earned[member], member
        assert balance.available == earned[member] - spent[member], member
        assert (balance.held, balance.frozen, balance.debt) == (0, 0, 0), member
