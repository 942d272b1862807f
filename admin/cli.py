"""Console commands: ``users`` (accounts and roles) and ``console`` (serve the admin console).

They join the ``jifen`` group through the ``jifen.commands`` entry points declared in
``pyproject.toml`` (``users`` and ``console``), so the core never imports the console.

``jifen console --demo`` builds a fresh SQLite demo database (a program, members and 60
days of orders), creates one demo login per role, prints the address and the logins, and
serves the console without Redis. Run on its own: ``python -m admin.cli --help``.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from loyalty.cli.demo import make_demo_database
from loyalty.cli.options import friendly_errors, require_program, url_option
from loyalty.db.database import Database, database_url_from_env, normalise_url
from loyalty.db.errors import open_checked, require_writable_dir
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
    for column in ("username", "role", "active", "last login"):
        table.add_column(column)
    found = list_users(open_checked(database_url))
    for u in found:
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if u.last_login_at else "never"
        table.add_row(u.username, u.role, "yes" if u.active else "[red]disabled[/]", last)
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
    "--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option("--program", metavar="CODE", help="The program to look after (default: the first).")
@click.option(
    "--demo",
    is_flag=True,
    help="Build a fresh SQLite demo database with demo logins and serve it (no Redis needed).",
)
@click.option(
    "--demo-database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("jifen-console-demo.db"),
    show_default=True,
    help="Where --demo writes its SQLite file (replaced on every start).",
)
@friendly_errors
def console(
    database_url: str | None,
    host: str,
    port: int,
    program: str | None,
    demo: bool,
    demo_database: Path,
) -> None:
    """Serve the admin console (a development server; in production run it under gunicorn:
    gunicorn 'admin:create_app()')."""
    from werkzeug.serving import run_simple

    from admin import create_app

    config: dict[str, object] = {"JIFEN_PROGRAM": program}
    if demo:
        require_writable_dir(demo_database)
    else:
        _check_console_database(database_url, program)
    if demo:
        console_out.print(f"building the demo database {demo_database} …")
        url = build_demo(demo_database)
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
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


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
