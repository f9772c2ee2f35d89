"""Dev tooling, never packaged: Kafka and PostgreSQL launchers, the demo, service lookup."""
