"""The order service's HTTP API (issue 12): FastAPI over the same application as the CLI."""
