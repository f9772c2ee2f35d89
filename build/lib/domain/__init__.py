"""Gift card domain: the terms of use as an event-sourced model (no infrastructure here)."""
