"""Reads: projected views, and time travel folded from the log."""
