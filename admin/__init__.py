"""Jifen's admin console (Flask + flask-admin) and the Stripe webhook endpoint.

:func:`create_app` builds the console: sign-in with roles (viewer, marketing, operations,
admin), the dashboard, earning rules with a preview, members, adjustments with approval,
jobs, webhook events, the audit log and CSV exports. ``admin.cli`` holds the ``users`` and
``console`` commands; :mod:`admin.webhooks` the Stripe webhook blueprint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(config: Any = None) -> Flask:
    """Build the console app; see :mod:`admin.app` for the configuration keys."""
    from admin.app import create_app as factory

    return factory(config)
