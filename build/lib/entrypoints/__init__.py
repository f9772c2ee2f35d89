"""Entry points: the command line (and later the HTTP API), thin over the application."""
