"""Use cases, one class per area (cards, checkout, privacy), over an explicit unit of work."""
