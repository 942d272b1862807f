"""Jifen's embeddable SDK for checkout code.

Not built yet: the stable client arrives with its own issue. Until then, call the service
functions in :mod:`loyalty.services` with a :class:`loyalty.db.Database`; they are what the
SDK will wrap. The errors are already the public ones.
"""

from loyalty.errors import LoyaltyError

__all__ = ["LoyaltyError"]
