"""Log lines: readable text or one JSON object per line, each with its request id, and no
secrets.

``$JIFEN_LOG_FORMAT`` picks the format (:func:`logging_config`, applied by
:func:`configure_logging`, or handed to gunicorn by ``jifen serve``):

* ``text`` (the default): ``2026-12-03T02:30:00.123Z INFO jifen.ledger: ledger write
  earn_purchase ok kind=earn_purchase key=earn:o-1 … request_id=4f2c…``;
* ``json``: ``{"timestamp": "2026-12-03T02:30:00.123456+00:00", "level": "INFO", "logger":
  "jifen.ledger", "message": "…", "kind": "earn_purchase", …, "request_id": "4f2c…"}``,
  made by python-json-logger's ``JsonFormatter`` (every ``extra=`` field becomes a key).

**Request ids.** :class:`RequestIds` (WSGI middleware in front of each Flask app) takes a
valid incoming ``X-Request-Id`` (1-64 of ``A-Z a-z 0-9 . _ : -``) or makes one, keeps it in
a context variable for the request (:func:`current_request_id`) and echoes it in the
response's ``X-Request-Id``; :class:`RequestIdFilter` adds it to every record logged
meanwhile.

**Secrets.** Nothing Jifen logs carries a secret on purpose; as a second line of defence
every line is passed through :func:`redact`: API keys past their shown prefix
(``jfn_sk_AbCdE…``), member tokens, webhook signing secrets, Stripe keys and anything after
``Bearer``/``Basic`` are cut, and ``extra`` fields named like a secret (``password``,
``token``, ``secret``, ``authorization``, ``api_key``…) are replaced by ``[redacted]``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import logging.config
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter

from loyalty.config import LOG_FORMAT_ENV, load_settings
from loyalty.errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-Id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_request_id: ContextVar[str | None] = ContextVar("jifen_request_id", default=None)

# --- secrets --------------------------------------------------------------------------------

REDACTED = "[redacted]"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(jfn_sk_[A-Za-z0-9_-]{5})[A-Za-z0-9_-]+"), r"\1…"),  # the shown prefix stays
    (re.compile(r"jfn_mt_[A-Za-z0-9_.:-]+"), "jfn_mt_…"),
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "whsec_…"),
    (re.compile(r"\b([sr]k_(?:live|test)_)[A-Za-z0-9]+"), r"\1…"),
    (re.compile(r"\b(Bearer|Basic)\s+[^\s\"',;]+", re.IGNORECASE), r"\1 …"),
)
_SECRET_FIELD = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|api_?key|cookie|credential", re.IGNORECASE
)


# What every pattern above starts with: most lines have none, and skip the substitutions.
_MAYBE_SECRET = re.compile(r"jfn_|whsec_|k_live_|k_test_|bearer|basic", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with anything that looks like a secret cut (see the module's docstring)."""
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=512)
def _secret_field(name: str) -> bool:
    return name != "request_id" and _SECRET_FIELD.search(name) is not None


def _redact_value(name: str, value: Any) -> Any:
    if _secret_field(name):
        return REDACTED
    return redact(value) if isinstance(value, str) else value


# --- request ids ----------------------------------------------------------------------------


def current_request_id() -> str | None:
    """The id of the HTTP request being served in this context, if any."""
    return _request_id.get()


def request_id_for(given: str | None) -> str:
    """``given`` when it is a valid request id, else a new one (32 hex characters)."""
    if given and _VALID_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestIds:
    """WSGI middleware: a request id per request, in a context variable while the app runs
    and in the response's ``X-Request-Id``; the app sees it in ``HTTP_X_REQUEST_ID``."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = _request_id.get() or request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        environ["HTTP_X_REQUEST_ID"] = request_id

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if not any(name.lower() == "x-request-id" for name, _ in headers):
                headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, *rest)

        token = _request_id.set(request_id)
        try:
            return self.app(environ, start)
        finally:
            _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


# --- formats --------------------------------------------------------------------------------

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What was logged with ``extra=`` (and the request id), by name."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonLogFormatter(JsonFormatter):
    """One JSON object per record: timestamp (ISO 8601, UTC), level, logger, message, the
    extra fields and the request id, with secrets cut."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="timestamp",
            json_ensure_ascii=False,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        ordered = {"timestamp": log_data.pop("timestamp", None), **log_data}
        return {name: _redact_value(name, value) for name, value in ordered.items()}


class TextLogFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message> name=value…`` (the extra fields and the
    request id last), with secrets cut."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line = (
            f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z {record.levelname} "
            f"{record.name}: {record.getMessage()}"
        )
        fields = extra_fields(record)
        if fields:
            shown = (f"{k}={REDACTED if _secret_field(k) else v}" for k, v in fields.items())
            line += " " + " ".join(shown)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


FORMATTERS: Mapping[str, Callable[[], logging.Formatter]] = {
    "text": TextLogFormatter,
    "json": JsonLogFormatter,
}


def log_format(given: str | None = None) -> str:
    """``given``, else ``$JIFEN_LOG_FORMAT``, else ``text``; refused when unknown."""
    chosen = (given or load_settings().log_format or "text").strip().lower()
    if chosen not in FORMATS:
        raise ConfigurationError(f"{LOG_FORMAT_ENV} must be {' or '.join(FORMATS)}, got {chosen!r}")
    return chosen


def make_formatter(style: str = "text") -> logging.Formatter:
    """The formatter of ``style`` (for ``logging.config`` and gunicorn's ``logconfig_dict``)."""
    return FORMATTERS[log_format(style)]()


def logging_config(
    format: str | None = None, *, level: str = "INFO", access_log: bool = True
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: every record, gunicorn's included, on stdout
    in one format with the request id; gunicorn's access lines only with ``access_log``."""
    style = log_format(format)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"jifen": {"()": make_formatter, "style": style}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "jifen",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {
                "level": "INFO" if access_log else "WARNING",
                "handlers": [],
                "propagate": True,
            },
        },
    }


def configure_logging(format: str | None = None, *, level: str = "INFO") -> None:
    """Send every log record to stdout in ``format`` (default ``$JIFEN_LOG_FORMAT``)."""
    logging.config.dictConfig(logging_config(format, level=level))
