"""Jifen's admin console (Flask + flask-admin) and the Stripe webhook endpoint.

Not built yet: the console arrives with its own issue. Until then the ``jifen`` command
(``jifen demo``, ``jifen verify``) is the way to look at a database.
"""
