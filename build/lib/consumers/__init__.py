"""Kafka consumers that turn input topics into application commands."""
