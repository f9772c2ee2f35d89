"""The composition root: above the adapters, below the entry points, which build through it."""
