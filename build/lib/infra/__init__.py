"""Adapters: event store, vault and secrets, Kafka, the published envelope, mailer; and the
composition root (bootstrap.py) with the one Settings (config.py)."""
