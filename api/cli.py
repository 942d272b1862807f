"""The HTTP API's commands: ``jifen keys`` (server keys and browser origins), ``jifen serve``
(the whole server under gunicorn) and ``jifen api spec`` (the OpenAPI document).

They join the ``jifen`` group through the ``jifen.commands`` entry points declared in
``pyproject.toml`` (``keys``, ``serve`` and ``api``), so the core never imports the API.
Every change goes through :mod:`loyalty.services.api_keys`, which audits it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from sqlalchemy.engine import make_url

from loyalty.cli.options import friendly_errors, print_error, require_program, url_option
from loyalty.cli.render import console, err_console, table
from loyalty.config import load_settings
from loyalty.db.database import Database, database_url_from_env, normalise_url
from loyalty.db.errors import open_checked
from loyalty.domain.calendar import zone
from loyalty.errors import ConfigurationError, InvalidInput
from loyalty.monitoring import metrics
from loyalty.monitoring.logs import log_format, logging_config
from loyalty.services import api_keys
from loyalty.services.programs import get_program

SPEC_FILE = Path(__file__).with_name("openapi.json")
SECRET_ENV = "JIFEN_SECRET_KEY"
STATUS_STYLES = {"active": "green", "revoked": "red", "expired": "yellow"}
HELP = {"help_option_names": ["-h", "--help"]}

program_option = click.option(
    "--program", required=True, metavar="CODE", help="The program's code (e.g. shop)."
)


@contextmanager
def _program_database(database_url: str | None, program: str) -> Iterator[Database]:
    """The checked database with ``program`` known to exist; closed on leaving."""
    database = open_checked(database_url)
    try:
        require_program(database, program)
        yield database
    finally:
        database.dispose()


# --- jifen keys ---------------------------------------------------------------------------


@click.group(context_settings=HELP)
def keys() -> None:
    """Server keys of the HTTP API and the browser origins a program allows.

    A client sends its key as `Authorization: Bearer jfn_sk_…`. A key belongs to one
    program and carries scopes: read, earn, redeem, refund, transfer, adjust, events (the
    events feed), webhooks (webhook endpoints), risk (risk rules and cases, account
    freezes), admin (admin covers all the others). It is shown once, when created; Jifen
    keeps only its hash. To rotate: create the new key, deploy it, then revoke the old one
    (both work in between).

    \b
    Examples:
      jifen keys create --program shop --scope earn --scope read --label checkout
      jifen keys list --program shop
      jifen keys revoke --program shop jfn_sk_AbCdE
      jifen keys origins add --program shop https://shop.example
    """


@keys.command("create")
@url_option
@program_option
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(api_keys.SCOPES, case_sensitive=False),
    help="What the key may do; repeat for several (admin covers every other scope).",
)
@click.option("--label", default="", help="What the key is for, shown in lists (e.g. checkout).")
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, 3660),
    metavar="N",
    help="The key stops working N days from now.",
)
@click.option(
    "--expires-at",
    metavar="ISO",
    help="The key stops working at this time (e.g. 2027-06-30T18:00; without an offset it "
    "is read in the program's time zone).",
)
@click.option(
    "--key-only",
    is_flag=True,
    help="Print only the key on stdout (for scripts); the rest, and the warning, go to stderr.",
)
@friendly_errors
def keys_create(
    database_url: str | None,
    program: str,
    scopes: tuple[str, ...],
    label: str,
    expires_in_days: int | None,
    expires_at: str | None,
    key_only: bool,
) -> None:
    """Create a server key and print it, once.

    \b
    Examples:
      jifen keys create --program shop --scope earn --scope read --label checkout
      jifen keys create --program shop --scope admin --label ops --expires-in-days 90
      jifen keys create --program shop --scope read --expires-at 2027-06-30T18:00
      KEY=$(jifen keys create --program shop --scope earn --label checkout --key-only)
    """
    if expires_in_days is not None and expires_at is not None:
        raise click.UsageError("give --expires-in-days or --expires-at, not both")
    with _program_database(database_url, program) as database:
        timezone = get_program(database, program).timezone
        until = _expiry(database, timezone, expires_in_days, expires_at)
        created = api_keys.create_key(
            database,
            program=program,
            scopes=scopes,
            label=label or f"created {database.clock.now():%Y-%m-%d}",
            expires_at=until,
        )
    _print_created(created, program, timezone, about=err_console if key_only else console)


def _print_created(
    created: api_keys.CreatedKey, program: str, timezone: str, *, about: Console
) -> None:
    """The new key on stdout, on a line of its own; what it is, and the warning, on
    ``about`` (stderr, so that a script reading stdout gets the key alone)."""
    key = created.key
    about.print(
        f"[bold]created API key {key.prefix}… for {program}[/] (id {key.id}, label {key.label!r})",
        soft_wrap=True,
        highlight=False,
    )
    console.print(created.secret, soft_wrap=True, markup=False, highlight=False)
    about.print(
        "[bold yellow]Copy this key now: it is shown only this once and cannot be read "
        "back.[/] Store it in your secret manager; if it is lost, create another key and "
        "revoke this one.",
        soft_wrap=True,
    )
    about.print(f"scopes:  {' '.join(key.scopes)}", soft_wrap=True, highlight=False)
    about.print(f"expires: {_when(key.expires_at, timezone, never='never')}", highlight=False)


def _expiry(
    database: Database, timezone: str, in_days: int | None, at: str | None
) -> dt.datetime | None:
    """The expiry the options ask for (aware UTC), or None."""
    if in_days is not None:
        return database.clock.now() + dt.timedelta(days=in_days)
    if at is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(at.strip())
    except ValueError as exc:
        raise InvalidInput(
            f"--expires-at must be an ISO date and time such as 2027-06-30T18:00, got {at!r}",
            field="expires_at",
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(timezone))
    if parsed <= database.clock.now():
        raise InvalidInput(
            f"--expires-at {at} has already passed; give a time in the future, or "
            "--expires-in-days N",
            field="expires_at",
        )
    return parsed.astimezone(dt.UTC)


def _when(value: dt.datetime | None, timezone: str, *, never: str = "") -> str:
    """A stored time in the program's time zone, to the minute."""
    if value is None:
        return never
    return value.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M")


@keys.command("list")
@url_option
@program_option
@friendly_errors
def keys_list(database_url: str | None, program: str) -> None:
    """List the program's keys: prefix, label, scopes, status and times (never the keys).

    Times are in the program's time zone.

    \b
    Example:
      jifen keys list --program shop
    """
    with _program_database(database_url, program) as database:
        timezone = get_program(database, program).timezone
        found = api_keys.list_keys(database, program=program)
        now = database.clock.now()
    shown = table(
        f"API keys of {program} (times in {timezone})",
        ("id", "prefix", "label", "scopes", "status", "created", "expires", "last used"),
        right=("id",),
    )
    shown.box = box.SIMPLE_HEAD  # no vertical rules: eight columns fit in 80 characters
    for column in shown.columns:
        column.overflow = "fold"  # a narrow terminal wraps a value, never cuts it short
    shown.columns[1].min_width = api_keys.SHOWN_CHARS + 1  # the prefix `revoke` takes
    for key in found:
        status = key.status(now)
        shown.add_row(
            str(key.id),
            f"{key.prefix}…",
            key.label,
            " ".join(key.scopes),
            f"[{STATUS_STYLES[status]}]{status}[/]",
            _when(key.created_at, timezone),
            _when(key.expires_at, timezone, never="never"),
            _when(key.last_used_at, timezone, never="never"),
        )
    console.print(shown)
    if not found:
        console.print(
            f"no keys yet: create one with `jifen keys create --program {program} --scope read`",
            soft_wrap=True,
        )


@keys.command("revoke")
@url_option
@program_option
@click.argument("key")
@friendly_errors
def keys_revoke(database_url: str | None, program: str, key: str) -> None:
    """Revoke the key KEY (its id or its prefix, as `jifen keys list` shows them): requests
    with it are refused from now on. Revoking it again changes nothing.

    \b
    Examples:
      jifen keys revoke --program shop jfn_sk_AbCdE
      jifen keys revoke --program shop 3
    """
    with _program_database(database_url, program) as database:
        done = api_keys.revoke_key(database, program=program, key=key)
        timezone = get_program(database, program).timezone
    console.print(
        f"[yellow]revoked[/] API key {done.prefix}… ({done.label!r}) at "
        f"{_when(done.revoked_at, timezone)} ({timezone})",
        soft_wrap=True,
        highlight=False,
    )


@keys.group("origins", context_settings=HELP)
def origins() -> None:
    """The browser origins (scheme://host[:port]) allowed to call the API with CORS and to
    embed the member page.

    \b
    Examples:
      jifen keys origins add --program shop https://shop.example
      jifen keys origins list --program shop
      jifen keys origins remove --program shop https://shop.example
    """


def _print_origins(program: str, found: list[str]) -> None:
    if not found:
        console.print(f"{program} allows no browser origins", highlight=False)
    for origin in found:
        console.print(origin, soft_wrap=True, markup=False, highlight=False)


def _origin_command(name: str, change: Callable[..., list[str]], summary: str) -> None:
    """``jifen keys origins NAME``: make ``change`` to one origin, then print them all."""

    @origins.command(
        name,
        help=f"{summary}\n\n\b\nExample:\n  jifen keys origins {name} --program shop "
        "https://shop.example",
    )
    @url_option
    @program_option
    @click.argument("origin")
    @friendly_errors
    def command(database_url: str | None, program: str, origin: str) -> None:
        with _program_database(database_url, program) as database:
            found = change(database, program=program, origin=origin)
        _print_origins(program, found)


_origin_command(
    "add", api_keys.add_origin, "Allow ORIGIN (e.g. https://shop.example); prints the origins."
)
_origin_command("remove", api_keys.remove_origin, "Stop allowing ORIGIN; prints the origins.")


@origins.command("list")
@url_option
@program_option
@friendly_errors
def origins_list(database_url: str | None, program: str) -> None:
    """List the origins the program allows.

    \b
    Example:
      jifen keys origins list --program shop
    """
    with _program_database(database_url, program) as database:
        found = api_keys.list_origins(database, program=program)
    _print_origins(program, found)


# --- jifen serve --------------------------------------------------------------------------


def default_workers() -> int:
    """One worker per CPU (at least one)."""
    return max(os.cpu_count() or 1, 1)


def pool_options(url: str, threads: int, pool_size: int | None) -> dict[str, Any]:
    """Each worker's connection pool on PostgreSQL: a connection per thread and two spare,
    plus two of overflow (or ``pool_size`` given). SQLite keeps its own pool."""
    if make_url(normalise_url(url)).get_backend_name() != "postgresql":
        return {}
    return {"pool_size": pool_size or threads + 2, "max_overflow": 2}


def check_serving(config: Mapping[str, Any]) -> None:
    """Build the whole server once, so a bad setting fails here and not in every worker:
    the secret, the database (reachable, migrated), the program and the webhook."""
    from api.server import create_server

    database = open_checked(config["JIFEN_DATABASE_URL"])
    try:
        create_server({**config, "JIFEN_DATABASE": database})
    finally:
        database.dispose()


def _require_secret() -> None:
    if not load_settings().secret_key:
        raise ConfigurationError(
            f"jifen serve needs ${SECRET_ENV}: the console signs sessions with it and the API "
            f"signs member tokens; set it to a long random string, made with "
            f'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )


def _served(base: str, webhook: bool) -> list[tuple[str, str]]:
    found = [
        ("API", f"{base}/v1"),
        ("API docs", f"{base}/v1/docs"),
        ("OpenAPI", f"{base}/v1/openapi.json"),
        ("console", f"{base}/admin"),
        ("member page", f"{base}/m/"),
        ("metrics", f"{base}/metrics"),
        ("health", f"{base}/healthz  {base}/readyz"),
    ]
    if webhook:
        found.append(("Stripe webhook", f"{base}/webhooks/stripe"))
    return found


def behind_proxies(app: Any, hops: int) -> Any:
    """``app`` reading the client's address and scheme from the last ``hops`` proxies'
    X-Forwarded-For and X-Forwarded-Proto (sign-in throttling and API limits count by
    address; console cookies need https); ``app`` itself when there is no proxy."""
    if hops == 0:
        return app
    from werkzeug.middleware.proxy_fix import ProxyFix

    return ProxyFix(app, x_for=hops, x_proto=hops)


def run_gunicorn(options: dict[str, Any], build: Callable[[], Any]) -> None:
    """Run ``build()`` (called in each worker, after the fork) under gunicorn's arbiter."""
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class JifenServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return build()

    JifenServer().run()


def announce(bind: str, workers: int, threads: int, pool: Mapping[str, int]) -> None:
    """Print what the server serves, where, and how many workers, threads and connections."""
    host = bind if bind.startswith("unix:") else f"http://{bind.replace('0.0.0.0', '127.0.0.1')}"
    webhook = bool(load_settings().stripe_webhook_secret)
    for name, address in _served(host.rstrip("/"), webhook):
        console.print(f"[bold]{name + ':':<16}[/]{address}", soft_wrap=True, highlight=False)
    connections = f", {pool['pool_size']} + {pool['max_overflow']} connections" if pool else ""
    console.print(
        f"{workers} worker(s) x {threads} thread(s){connections} each; "
        "Ctrl+C or SIGTERM stops it gracefully",
        soft_wrap=True,
        highlight=False,
    )


class MetricsFolder:
    """Where gunicorn's workers keep their metrics so that ``/metrics`` sums them all
    (prometheus-client's multi-process mode), and the hooks that look after it.

    ``$PROMETHEUS_MULTIPROC_DIR`` when set (it must be set before the server starts, as
    the library asks); else, with several workers, a folder made for this run and removed
    when it stops; else none (one worker counts alone).
    """

    def __init__(self, workers: int) -> None:
        self.path = metrics.multiprocess_dir()
        self.made = False
        if self.path is None and workers > 1:
            self.path = tempfile.mkdtemp(prefix="jifen-metrics-")
            self.made = True
            metrics.use_multiprocess_dir(self.path)

    def hooks(self) -> dict[str, Any]:
        """gunicorn's ``on_starting``, ``child_exit`` and ``on_exit`` settings."""
        if self.path is None:
            return {}
        return {"on_starting": self.starting, "child_exit": self.child_exit, "on_exit": self.exit}

    def starting(self, server: Any) -> None:
        """Before the workers start: the values a previous run left are removed."""
        if self.path is not None:
            metrics.clear_multiprocess_dir(self.path)

    def child_exit(self, server: Any, worker: Any) -> None:
        metrics.worker_exited(worker.pid)

    def exit(self, server: Any) -> None:
        if self.made and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def gunicorn_options(
    bind: str,
    workers: int,
    threads: int,
    timeout: int,
    access_log: bool,
    folder: MetricsFolder | None = None,
) -> dict[str, Any]:
    """Gunicorn's settings: gthread workers with keep-alive, logs on stdout in
    ``$JIFEN_LOG_FORMAT`` (gunicorn's own lines too), the metrics folder's hooks."""
    return {
        "bind": [bind],
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": timeout,
        "graceful_timeout": timeout,
        "keepalive": 5,
        "accesslog": "-" if access_log else None,
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "proc_name": "jifen",
        "control_socket_disable": True,  # one per user by default: two servers would clash
        "logconfig_dict": logging_config(access_log=access_log),
        **(folder.hooks() if folder is not None else {}),
    }


ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s "%(a)s"'


@click.command("serve", context_settings=HELP)
@url_option
@click.option(
    "--bind",
    default="127.0.0.1:8000",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen (0.0.0.0:8000 for every interface; unix:/run/jifen.sock).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=default_workers,
    show_default="the CPU count",
    help="Worker processes.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Threads per worker (requests served at once by each).",
)
@click.option(
    "--pool-size",
    type=click.IntRange(1, 500),
    metavar="N",
    help="PostgreSQL connections per worker (default: threads + 2, plus 2 overflow).",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 3600),
    default=30,
    show_default=True,
    help="Seconds a request may take before its worker is restarted.",
)
@click.option(
    "--proxy-hops",
    type=click.IntRange(0, 5),
    default=0,
    show_default=True,
    metavar="N",
    help="Proxies in front that set X-Forwarded-For and X-Forwarded-Proto (1 behind one "
    "nginx or Caddy): the client's address and https are read from them. Only when every "
    "request comes through them, or clients could claim any address.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request on stdout, with its request id.",
)
@friendly_errors
def serve(
    database_url: str | None,
    bind: str,
    workers: int,
    threads: int,
    pool_size: int | None,
    timeout: int,
    proxy_hops: int,
    access_log: bool,
) -> None:
    """Serve the API (/v1), its docs (/v1/docs), the member page (/m/), the console
    (/admin) and, with $JIFEN_STRIPE_WEBHOOK_SECRET, the Stripe webhook, under gunicorn.

    Needs $JIFEN_SECRET_KEY and a migrated database ($JIFEN_DATABASE_URL or
    --database-url); both are checked once before the workers start. Optional:
    $JIFEN_REDIS_URL (rate limits shared by the workers, queued jobs), $JIFEN_PROGRAM.

    Gunicorn's gthread workers: WORKERS processes of THREADS threads each, with keep-alive.
    Each worker holds its own database pool (on PostgreSQL threads + 2 connections and 2 of
    overflow), so the server may open WORKERS x (THREADS + 4) connections: keep that under
    the server's max_connections, or put PgBouncer in front. On a 2-core box the defaults
    (2 workers x 8 threads: 20 pooled connections, 24 at most) suit. Without
    $JIFEN_REDIS_URL each worker counts rate limits on its own. Run it behind a TLS proxy
    (nginx, Caddy) with --proxy-hops 1: console cookies are sent over https only, and
    sign-in throttling and API limits count by the client's address.

    Operators: GET /metrics (Prometheus; with $JIFEN_METRICS_TOKEN it needs
    Authorization: Bearer <token>), /healthz and /readyz. With several workers their
    metrics are summed through files in $PROMETHEUS_MULTIPROC_DIR (set it in the service's
    environment), else in a folder made for the run. $JIFEN_LOG_FORMAT=json logs one JSON
    object per line, gunicorn's lines included.

    \b
    Examples:
      jifen serve
      jifen serve --bind 0.0.0.0:8000 --workers 4 --threads 8
      jifen serve --bind 127.0.0.1:8000 --proxy-hops 1    # behind nginx on this host
      JIFEN_DATABASE_URL=postgresql://jifen@db/jifen JIFEN_SECRET_KEY=… jifen serve
    """
    url = normalise_url(database_url_from_env(database_url))
    _require_secret()
    log_format()  # a wrong $JIFEN_LOG_FORMAT stops it here
    config: dict[str, Any] = {"JIFEN_DATABASE_URL": url}
    check_serving(config)
    pool = pool_options(url, threads, pool_size)
    folder = MetricsFolder(workers)

    def build() -> Any:
        from api.server import create_server

        server = create_server({**config, "JIFEN_DATABASE": Database.from_url(url, **pool)})
        return behind_proxies(server, proxy_hops)

    announce(bind, workers, threads, pool)
    run_gunicorn(gunicorn_options(bind, workers, threads, timeout, access_log, folder), build)


# --- jifen api spec -----------------------------------------------------------------------


@click.group("api", context_settings=HELP)
def api_group() -> None:
    """The HTTP API's own tools (its OpenAPI document)."""


def spec_document() -> str:
    """The API's OpenAPI document as served at ``/v1/openapi.json``, in a stable form
    (sorted keys, indent 2, trailing newline). Built over a throwaway SQLite file, so it
    needs no database or settings."""
    from api.app import create_api_app

    with tempfile.TemporaryDirectory(prefix="jifen-spec-") as folder:
        database = Database.from_url(f"sqlite:///{Path(folder) / 'spec.db'}")
        try:
            app = create_api_app(
                {
                    "JIFEN_DATABASE": database,
                    "JIFEN_REDIS_URL": None,
                    "SECRET_KEY": "",
                    "RATELIMIT_ENABLED": False,
                }
            )
            response = app.test_client().get("/v1/openapi.json")
            if response.status_code != 200:
                raise ConfigurationError(
                    f"the API did not serve its OpenAPI document ({response.status}); "
                    "run the API's tests to see why"
                )
            document = response.get_json()
        finally:
            database.dispose()
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def spec_difference(checked_in: str, generated: str, *, limit: int = 40) -> str:
    """The first lines of a unified diff from the checked-in document to the generated one."""
    lines = list(
        difflib.unified_diff(
            checked_in.splitlines(),
            generated.splitlines(),
            "api/openapi.json (checked in)",
            "generated",
            lineterm="",
        )
    )
    more = f"\n… and {len(lines) - limit} more lines" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


@api_group.command("spec")
@click.option("--write", is_flag=True, help=f"Write the document to {SPEC_FILE.name}.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 if the checked-in document differs from the API's (for CI).",
)
@friendly_errors
def api_spec(write: bool, check: bool) -> None:
    """Print the API's OpenAPI document (what /v1/openapi.json serves), or write or check the
    checked-in copy, api/openapi.json. Needs no database.

    \b
    Examples:
      jifen api spec > openapi.json
      jifen api spec --write     # after changing an endpoint or a schema
      jifen api spec --check     # in CI: fails when api/openapi.json is stale
    """
    if write and check:
        raise click.UsageError("give --write or --check, not both")
    generated = spec_document()
    if write:
        SPEC_FILE.write_text(generated, encoding="utf-8")
        click.echo(f"wrote {SPEC_FILE}")
        return
    if not check:
        click.echo(generated, nl=False)
        return
    checked_in = SPEC_FILE.read_text(encoding="utf-8") if SPEC_FILE.is_file() else ""
    if checked_in == generated:
        click.echo(f"{SPEC_FILE} is up to date")
        return
    click.echo(spec_difference(checked_in, generated), err=True)
    print_error(
        f"{SPEC_FILE} differs from the API's OpenAPI document; run `jifen api spec --write` "
        "and commit the file"
    )
    raise SystemExit(1)
