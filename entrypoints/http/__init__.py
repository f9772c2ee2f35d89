"""The order service's HTTP API: FastAPI over the same application as the CLI."""
