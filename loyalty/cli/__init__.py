"""The ``jifen`` command: migrations, the demo, ledger verification, the forecast, the jobs,
the reward catalog, member tiers and risk control.

Every command takes ``--database-url`` (or ``$JIFEN_DATABASE_URL``) and has ``--help``.
Errors are printed as one line that says what to do next, with exit status 1 (2 for usage).

This module owns the ``jifen`` group (:func:`main`); the commands live by area in
:mod:`.schema`, :mod:`.ledger`, :mod:`.demo`, :mod:`.jobs`, :mod:`.rewards`, :mod:`.tiers`,
:mod:`.email`, :mod:`.webhooks`, :mod:`.events` and :mod:`.risk`,
what they share in :mod:`.options` and how they show things in :mod:`.render`. Other packages
add commands through the ``jifen.commands`` entry-point group (the console adds ``users`` and
``console``); they are loaded on first use, so the core never imports them.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from loyalty import __version__
from loyalty.cli.demo import demo
from loyalty.cli.email import email_group
from loyalty.cli.events import events_group
from loyalty.cli.jobs import clear, cron_command, jobs_command, remind, sweep, worker
from loyalty.cli.ledger import forecast_command, verify
from loyalty.cli.rewards import rewards_group
from loyalty.cli.risk import risk_group
from loyalty.cli.schema import db
from loyalty.cli.tiers import tiers_group
from loyalty.cli.webhooks import webhooks_group

COMMANDS_GROUP = "jifen.commands"


class JifenGroup(click.Group):
    """The ``jifen`` group; commands from the ``jifen.commands`` entry points join it on first
    use (each entry point's name is its command's name)."""

    _plugins_loaded = False

    def _add_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for point in entry_points(group=COMMANDS_GROUP):
            if point.name not in self.commands:
                self.add_command(point.load(), point.name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)


@click.group(cls=JifenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jifen")
def main() -> None:
    """Jifen: a self-hostable customer loyalty points platform."""


CORE_COMMANDS: tuple[click.Command, ...] = (
    db,
    verify,
    demo,
    forecast_command,
    worker,
    cron_command,
    sweep,
    remind,
    clear,
    jobs_command,
    rewards_group,
    tiers_group,
    email_group,
    webhooks_group,
    events_group,
    risk_group,
)
for _command in CORE_COMMANDS:
    main.add_command(_command)
