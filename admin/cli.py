"""Console commands: ``users`` (accounts and roles) and ``console`` (serve the admin console).

They join the ``jifen`` group through the ``jifen.commands`` entry points declared in
``pyproject.toml`` (``users`` and ``console``), so the core never imports the console.

``jifen console --demo`` serves the console without Redis on a SQLite demo database (a
program, members and 60 days of orders, one demo login per role) and prints the address and
the logins. The database is kept between starts, so work done in the console stays; it is
built when there is none, when it is from another schema or its build did not finish, and on
``--fresh``. A port another program holds is refused before anything is built (asked for
again when run from a terminal). Run on its own: ``python -m admin.cli --help``.
"""

from __future__ import annotations

import datetime as dt
import errno
import socket
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from loyalty.cli.demo import kept_demo_database, make_demo_database, sqlite_url
from loyalty.cli.options import friendly_errors, require_program, url_option
from loyalty.db.database import Database, database_url_from_env, normalise_url
from loyalty.db.errors import open_checked, require_writable_dir
from loyalty.errors import ConfigurationError
from loyalty.monitoring.logs import configure_logging
from loyalty.services.demo import DEMO_PROGRAM

console_out = Console()

DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("viewer", "viewer-demo", "viewer"),
    ("marketing", "marketing-demo", "marketing"),
    ("operations", "operations-demo", "operations"),
    ("admin", "admin-demo", "admin"),
)


def _roles() -> click.Choice[str]:
    from loyalty.services.console_users import ROLES

    return click.Choice(ROLES)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def users() -> None:
    """Console accounts: create them, list them, change their role, disable them.

    Roles: viewer (reads), marketing (earning rules), operations (members, adjustments,
    webhook events, jobs, exports), admin (everything).
    """


@users.command("create")
@url_option
@click.option("--username", required=True, help="The login name.")
@click.option("--role", required=True, type=_roles(), help="What the user may do.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 8 characters (asked for, hidden, when not given).",
)
@friendly_errors
def users_create(database_url: str | None, username: str, role: str, password: str) -> None:
    """Create a console user with a hashed password."""
    from loyalty.services.console_users import create_user

    user = create_user(open_checked(database_url), username=username, role=role, password=password)
    console_out.print(f"[green]created[/] {user.username} ({user.role})")


@users.command("list")
@url_option
@friendly_errors
def users_list(database_url: str | None) -> None:
    """List the console users and their roles."""
    from loyalty.services.console_users import list_users

    table = Table(title="Console users", title_justify="left")
    for column in ("username", "role", "active", "language", "last login"):
        table.add_column(column)
    found = list_users(open_checked(database_url))
    for u in found:
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if u.last_login_at else "never"
        active = "yes" if u.active else "[red]disabled[/]"
        table.add_row(u.username, u.role, active, u.locale or "browser", last)
    console_out.print(table)
    if not found:
        console_out.print(
            "no users yet: create one with `jifen users create --username NAME --role admin`"
        )


@users.command("set-role")
@url_option
@click.option("--username", required=True, help="The login name.")
@click.option("--role", required=True, type=_roles(), help="The new role.")
@friendly_errors
def users_set_role(database_url: str | None, username: str, role: str) -> None:
    """Give a console user another role."""
    from loyalty.services.console_users import set_role

    user = set_role(open_checked(database_url), username=username, role=role)
    console_out.print(f"[green]{user.username} is now {user.role}[/]")


LANGUAGES = {"zh": "zh_Hans", "en": "en", "browser": None}


@users.command("set-language")
@url_option
@click.option("--username", required=True, help="The login name.")
@click.option(
    "--language",
    required=True,
    type=click.Choice(list(LANGUAGES)),
    help="zh (简体中文), en (English), or browser (whatever their browser asks for).",
)
@friendly_errors
def users_set_language(database_url: str | None, username: str, language: str) -> None:
    """Keep the console's language for a user (they can also switch in the console)."""
    from loyalty.services.console_users import set_language

    user = set_language(open_checked(database_url), username=username, locale=LANGUAGES[language])
    console_out.print(f"[green]{user.username} reads the console in {language}[/]")


@users.command("disable")
@url_option
@click.option("--username", required=True, help="The login name.")
@friendly_errors
def users_disable(database_url: str | None, username: str) -> None:
    """Disable a console user: they can no longer sign in (sessions end at once)."""
    from loyalty.services.console_users import set_active

    user = set_active(open_checked(database_url), username=username, active=False)
    console_out.print(f"[yellow]{user.username} is disabled[/]")


def build_demo(path: Path, *, members: int = 25, orders: int = 400) -> str:
    """A fresh SQLite demo database at ``path`` with the demo logins; its URL."""
    from loyalty.services.console_users import create_user

    url = make_demo_database(path, member_count=members, order_count=orders)
    database = Database.from_url(url)
    try:
        for username, password, role in DEMO_USERS:
            create_user(database, username=username, role=role, password=password, actor="demo")
    finally:
        database.dispose()
    return url


@click.command("console", context_settings={"help_option_names": ["-h", "--help"]})
@url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on (make demo PORT=8080); a taken one is refused before anything else.",
)
@click.option("--program", metavar="CODE", help="The program to look after (default: the first).")
@click.option(
    "--demo",
    is_flag=True,
    help="Serve a SQLite demo database with demo logins (no Redis needed).",
)
@click.option(
    "--demo-database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("jifen-console-demo.db"),
    show_default=True,
    help="Where --demo keeps its SQLite file between starts.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="With --demo: build the demo database anew (the one kept is replaced).",
)
@friendly_errors
def console(
    database_url: str | None,
    host: str,
    port: int,
    program: str | None,
    demo: bool,
    demo_database: Path,
    fresh: bool,
) -> None:
    """Serve the admin console (a development server; in production run it under gunicorn:
    gunicorn 'admin:create_app()')."""
    from werkzeug.serving import run_simple

    from admin import create_app

    if fresh and not demo:
        raise click.UsageError("--fresh rebuilds the demo database: use it with --demo")
    config: dict[str, object] = {"JIFEN_PROGRAM": program}
    if demo:
        require_writable_dir(demo_database)
    else:
        _check_console_database(database_url, program)
    port = usable_port(host, port, demo=demo)
    if demo:
        url = _demo_database(demo_database, fresh=fresh)
        config.update(
            JIFEN_DATABASE_URL=url,
            JIFEN_PROGRAM=program or DEMO_PROGRAM,
            JIFEN_DEMO=True,
            JIFEN_DEMO_LOGINS=DEMO_USERS,
            JIFEN_REDIS_URL=None,
            SESSION_COOKIE_SECURE=False,
        )
    elif database_url:
        config["JIFEN_DATABASE_URL"] = normalise_url(database_url)
    app = create_app(config)
    address = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    table = Table(title="Jifen console", title_justify="left", show_header=demo)
    if demo:
        for column in ("username", "password", "role"):
            table.add_column(column)
        for row in DEMO_USERS:
            table.add_row(*row)
    console_out.print(f"\n[bold]console:[/] {address}", soft_wrap=True)
    if demo:
        console_out.print(table)
        console_out.print("demo logins above; press Ctrl+C to stop", soft_wrap=True)
    configure_logging()
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


def _demo_database(path: Path, *, fresh: bool) -> str:
    """The URL of the demo database at ``path``: the one kept from an earlier start, else a new
    one; says which, and why it builds one."""
    found = kept_demo_database(path, [username for username, _, _ in DEMO_USERS])
    if found.built_at is not None and not fresh:
        console_out.print(
            f"using the demo database at {path}, built {_when(found.built_at)}; "
            "--fresh (make demo FRESH=1) rebuilds it with orders up to today",
            soft_wrap=True,
        )
        return sqlite_url(path)
    why = "--fresh" if fresh else found.rebuild_because
    console_out.print(f"building the demo database at {path} ({why}) …", soft_wrap=True)
    return build_demo(path)


def _when(moment: dt.datetime) -> str:
    """``2026-12-02 14:30 UTC (3 days ago)``, in this machine's time zone."""
    days = (dt.datetime.now(dt.UTC) - moment).days
    ago = "today" if days < 1 else "1 day ago" if days == 1 else f"{days:,} days ago"
    return f"{moment.astimezone():%Y-%m-%d %H:%M %Z} ({ago})"


def usable_port(host: str, port: int, *, demo: bool) -> int:
    """``port``, or another one when nothing can listen on it: asked for at a terminal,
    else a :class:`ConfigurationError` naming the option."""
    problem = listen_problem(host, port)
    if problem is None:
        return port
    spare = _spare_port(host, port)
    if sys.stdin.isatty() and sys.stdout.isatty():
        chosen: int = click.prompt(
            f"port {port} on {host} {problem}; port to use instead",
            default=spare,
            type=click.IntRange(1, 65535),
        )
        return usable_port(host, chosen, demo=demo)
    how = f"--port {spare}" + (f" (make demo PORT={spare})" if demo else "")
    raise ConfigurationError(f"port {port} on {host} {problem}; choose another with {how}")


def listen_problem(host: str, port: int) -> str | None:
    """Why the console could not listen on ``host``:``port`` (bound as werkzeug binds), if
    it could not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"cannot listen on {host!r} ({exc.strerror}); check --host"
        ) from exc
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is taken by another program (on macOS often the AirPlay Receiver)"
            return f"cannot be used ({exc.strerror})"
    return None


def _spare_port(host: str, port: int) -> int:
    """A port near ``port`` that nothing listens on, to suggest."""
    for candidate in range(max(port + 1, 1024), min(port + 50, 65536)):
        if listen_problem(host, candidate) is None:
            return candidate
    return 8080


def _check_console_database(database_url: str | None, program: str | None) -> None:
    """Fail before serving when the database is unusable or the program unknown."""
    database = open_checked(database_url_from_env(database_url))
    try:
        if program is not None:
            require_program(database, program)
    finally:
        database.dispose()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The console's commands on their own (``jifen users`` and ``jifen console``)."""


cli.add_command(users)
cli.add_command(console)

if __name__ == "__main__":
    cli()
