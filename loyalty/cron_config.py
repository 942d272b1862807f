"""The cron configuration for rq's own scheduler: ``rq cron loyalty.cron_config --url redis://…``.

Importing this module reads the programs from ``$JIFEN_DATABASE_URL`` and registers every
entry of :func:`loyalty.schedule.load_schedule` with rq's ``cron.register``: the sweeps,
the reminders and each program's year-end clearing at its own moment (cron strings in UTC).
``jifen cron`` does the same without this module and can print the schedule first.

Run exactly one cron process, and restart it after adding a program or changing its
clearing settings (the hourly ``clear`` safety net covers a missed moment meanwhile).
"""

from __future__ import annotations

from typing import Any

from rq import cron

from loyalty.db.database import Database
from loyalty.queue import register_schedule
from loyalty.schedule import load_schedule


def register_jobs() -> list[dict[str, Any]]:
    """Register the schedule of the database at ``$JIFEN_DATABASE_URL`` with ``rq cron``."""
    database = Database.from_url()
    try:
        entries = load_schedule(database)
    finally:
        database.dispose()
    return register_schedule(entries, cron.register)


REGISTERED = register_jobs()
