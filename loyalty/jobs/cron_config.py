"""The cron configuration for rq's own scheduler: ``rq cron loyalty.jobs.cron_config --url …``.

rq's cron reads a configuration by importing (or reloading) a module that calls
``rq.cron.register``. When rq's ``CronScheduler.load_config_from_file`` imports this module,
it reads the programs from ``$JIFEN_DATABASE_URL`` and registers every entry of
:func:`loyalty.jobs.schedule.load_schedule`: the sweeps, the reminders and each program's
year-end clearing at its own moment (cron strings in UTC). Imported by anything else, it
does nothing until :func:`register_jobs` is called: it never opens the database by itself.
``jifen cron`` does the same without this module and can print the schedule first.

Run exactly one cron process, and restart it after adding a program or changing its
clearing settings (the hourly ``clear`` safety net covers a missed moment meanwhile).
"""

from __future__ import annotations

import sys
from typing import Any

from rq import cron

from loyalty.config import load_settings
from loyalty.db.database import Database
from loyalty.jobs.rq import register_schedule
from loyalty.jobs.schedule import load_schedule


def register_jobs() -> list[dict[str, Any]]:
    """Register the schedule of the database at ``$JIFEN_DATABASE_URL`` with ``rq cron``."""
    database = Database.from_url(load_settings().database_url)
    try:
        entries = load_schedule(database)
    finally:
        database.dispose()
    return register_schedule(entries, cron.register)


def loaded_by_rq_cron() -> bool:
    """True while rq's ``CronScheduler.load_config_from_file`` is importing this module."""
    loader = cron.CronScheduler.load_config_from_file.__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is loader:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


if loaded_by_rq_cron():
    register_jobs()
