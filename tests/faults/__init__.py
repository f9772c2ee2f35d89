"""Fault tests: real services and processes stopped, killed and restarted mid-run."""
