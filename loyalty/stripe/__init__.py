"""Stripe, a door into the ledger: the webhook (verify, parse), what Jifen reads from Stripe's
objects (``payloads``), the pure plan from an order's events to service calls (``plan``) and
the service that applies them (``sync``)."""
