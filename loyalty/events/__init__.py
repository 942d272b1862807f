"""Outbound events: the outbox (:mod:`.outbox`), its dispatch to webhook endpoints
(:mod:`.dispatch`), endpoints and their secrets (:mod:`.endpoints`), signed delivery with
retries (:mod:`.delivery`) and the e-mail channel for reminders (:mod:`.email`)."""
