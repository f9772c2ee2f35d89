"""The operators' console: server-rendered pages over the same use cases as the HTTP API."""
