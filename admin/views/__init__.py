"""The console's pages (flask-admin views). Each is a thin door: reads are queries, every
change is a service call."""

from admin.views.adjustments import AdjustmentsView
from admin.views.audit import AuditView
from admin.views.dashboard import DashboardView
from admin.views.events import EventsView
from admin.views.export import ExportView
from admin.views.fulfilment import FulfilmentView
from admin.views.jobs import JobsView
from admin.views.keys import KeysView
from admin.views.members import MembersView
from admin.views.rewards import RewardsView
from admin.views.rules import RulesView
from admin.views.tiers import TiersView
from admin.views.webhooks_out import OutboundWebhooksView

__all__ = [
    "AdjustmentsView",
    "AuditView",
    "DashboardView",
    "EventsView",
    "ExportView",
    "FulfilmentView",
    "JobsView",
    "KeysView",
    "MembersView",
    "OutboundWebhooksView",
    "RewardsView",
    "RulesView",
    "TiersView",
]
