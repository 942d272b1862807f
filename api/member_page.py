"""The member page at ``/m/`` (placeholder until the page lands)."""

from __future__ import annotations

from flask import Blueprint

blp = Blueprint("member_page", __name__, url_prefix="/m")
