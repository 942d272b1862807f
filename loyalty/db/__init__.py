"""Persistence: the schema (models), column types and the database handle."""

from loyalty.db.database import Database
from loyalty.db.models import Base

__all__ = ["Base", "Database"]
