"""Kafka adapters: topics, the store-to-Kafka relay, producers and consumers."""
