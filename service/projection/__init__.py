"""Keeping the read models up to date: runner, checkpoints, read-your-writes, rebuild."""
