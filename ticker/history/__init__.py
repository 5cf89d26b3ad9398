"""Price history: the snapshot-embedded hourly sparkline points (sparkline.py)."""
