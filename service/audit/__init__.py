"""Tamper evidence: verify, export, offline replay, the Merkle ledger and its signed notes."""
