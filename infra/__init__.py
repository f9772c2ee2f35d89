"""Adapters: storage, secrets, Kafka, CLI and the composition root."""
