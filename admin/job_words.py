"""What the console calls the scheduled jobs, in the request's language: each job's word (the
dashboard's health strip, the jobs page, the forecast's series), what it does, and who
started a run.

In English a job is called by its name (``expire``, ``hold_timeouts``), as the CLI, the
metrics and the logs call it, and what it does reads as its spec's summary
(:data:`loyalty.jobs.JOBS`); in Chinese each has a word for what it does (过期, 冻结超时释放).
(:mod:`admin.code_words`). A job or trigger added before its words shows its name.
"""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from admin.code_words import code_word

JOB_WORDS: dict[str, LazyString] = {
    "expire": _l("rolling expiry"),
    "mature": _l("pending points maturing"),
    "hold_timeouts": _l("hold time-outs"),
    "remind": _l("expiry reminders"),
    "clear": _l("year-end clearing sweep"),
    "clear_year": _l("year-end clearing of one program"),
    "tiers": _l("tier evaluations"),
    "events": _l("event delivery"),
    "risk": _l("risk scan"),
}
# What each job does, as its spec's summary says it in English.
JOB_SUMMARIES: dict[str, LazyString] = {
    "expire": _l("rolling expiry of lots"),
    "mature": _l("pending points become available"),
    "hold_timeouts": _l("release timed-out holds"),
    "remind": _l("points-expiring reminders"),
    "clear": _l("every year-end clearing that is due"),
    "clear_year": _l("one program's year-end clearing"),
    "tiers": _l("member tier evaluations that are due"),
    "events": _l("dispatch and deliver outbound events, send reminder e-mails"),
    "risk": _l("evaluate the risk rules (velocity, farming, transfer rings, issuance spikes)"),
}
# Who started a run (``job_runs.trigger``).
TRIGGER_WORDS: dict[str, LazyString] = {
    "cli": _l("command line"),
    "cron": _l("schedule (cron)"),
    "queue": _l("worker queue"),
    "inline": _l("run inline"),
    "console": _l("console, run now"),
}


def job_word(name: str) -> str:
    """A job's word: its name in English, what it does in Chinese."""
    return code_word(JOB_WORDS, name)


def job_summary(name: str, summary: str) -> str:
    """What job ``name`` does: its spec's ``summary`` in English."""
    return code_word(JOB_SUMMARIES, name, summary)


def trigger_word(trigger: str) -> str:
    """Who started a run: the code in English, in words in Chinese."""
    return code_word(TRIGGER_WORDS, trigger)
