"""The command path: decide, append in one transaction with retry, idempotency."""
