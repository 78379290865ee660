"""Mutants of the product's promises: each one breaks a rule Parley promises, and
the suite must notice. `.ci/run` runs this; it fails when a mutant survives (the
tests named for it all pass with the rule broken) or no longer applies (the code
it breaks has moved: update the mutant with the code, in the same commit).

    uv run python -m tests.mutants            # all of them
    uv run python -m tests.mutants gap-free   # one, by name

Each mutant is applied to the working tree in place and the file is restored
afterwards (also on Ctrl-C), so run it on a clean checkout, as CI does. Only the
tests named for a mutant run, on the embedded PostgreSQL unless
PARLEY_TEST_DATABASE_URL says otherwise.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    promise: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "gap-free",
        "readers never pass an event that commits late with a lower position",
        "service/store/log_reader.py",
        'GAP_FREE = "events.txid < pg_snapshot_xmin(pg_current_snapshot())"',
        'GAP_FREE = "true"',
        ("tests/integration/test_store.py", "tests/reliability/test_late_commits.py"),
    ),
    Mutant(
        "optimistic-concurrency",
        "a command decided on a stale stream is decided again, never appended",
        "service/write/commands.py",
        "await self.store.append(pending, expected, conn=working.conn, wake_readers=False)",
        "await self.store.append(pending, None, conn=working.conn, wake_readers=False)",
        ("tests/reliability/test_real_concurrency.py",),
    ),
    Mutant(
        "idempotency-scope",
        "an Idempotency-Key names one request: its method, negotiation and body",
        "service/http/body.py",
        'digest.update(method.upper().encode() + b" " + path.encode() + b"\\n")',
        'digest.update(method.upper().encode() + b"\\n")',
        ("tests/api/test_idempotency.py",),
    ),
    Mutant(
        "hash-chain",
        "each event's hash covers the previous hash of its stream",
        "service/store/canonical.py",
        "return hashlib.sha256(previous + body).digest()",
        "return hashlib.sha256(body).digest()",
        ("tests/integration/audit", "tests/unit/audit", "tests/integration/test_store.py"),
    ),
    Mutant(
        "role-guard",
        "an auditor reads the log but records nothing",
        "service/auth.py",
        "Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),",
        "Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT, Permission.RECORD}),",
        ("tests/api/test_roles.py",),
    ),
    Mutant(
        "status-precedence",
        "a violation outranks an implementation (the first matching rule wins)",
        "domain/status_rules.py",
        'if any(a.state == "violated" for a in in_force) or any(\n'
        '        (i.agreed or i.declared) and i.state == "violated" for i in items\n'
        '    ):\n'
        '        return "violated"\n'
        '    if any(a.withdrawn_by for a in in_force):\n'
        '        return "withdrawn"\n'
        '    implemented = [a.implementation.extent for a in in_force if a.implementation is not None]\n'
        '    if "full" in implemented:\n'
        '        return "implemented"',
        'implemented = [a.implementation.extent for a in in_force if a.implementation is not None]\n'
        '    if "full" in implemented:\n'
        '        return "implemented"\n'
        '    if any(a.state == "violated" for a in in_force) or any(\n'
        '        (i.agreed or i.declared) and i.state == "violated" for i in items\n'
        '    ):\n'
        '        return "violated"\n'
        '    if any(a.withdrawn_by for a in in_force):\n'
        '        return "withdrawn"',
        ("tests/unit/test_issue_rules.py", "tests/unit"),
    ),
    Mutant(
        "known-at-window",
        "a view known at an instant includes what was recorded at that instant",
        "domain/status.py",
        "if known_at is not None and record.recorded_at > known_at:",
        "if known_at is not None and record.recorded_at >= known_at:",
        ("tests/api/test_time_travel.py", "tests/unit"),
    ),
    Mutant(
        "as-of-window",
        "a fact dated a day has happened by the end of that day",
        "domain/world_time.py",
        "return fact < end_of_day",
        "return fact < end_of_day - dt.timedelta(hours=12)",
        ("tests/unit/test_issue_rules.py", "tests/api/test_time_travel.py", "tests/unit"),
    ),
    Mutant(
        "served-data-checked",
        "an export whose served data differ from the hashed body fails verification",
        "service/audit/served.py",
        '"data": (_json_value(event.data), _json_value(hashed.data)),',
        "",
        ("tests/integration/audit/test_served_fields.py", "tests/integration/audit"),
    ),
    Mutant(
        "key-revocation-announced",
        "a revoked key is refused in every process once its revocation is announced, whatever the cache's time limit",
        "service/auth.py",
        "        self._generation += 1\n        self._held.pop(key_id, None)",
        "        pass",
        ("tests/integration/test_key_cache.py",
         "tests/replication/test_nodes.py::test_a_revoked_key_is_refused_on_both_nodes_by_the_announcement"),
    ),
    Mutant(
        "listener-down-bypass",
        "while a process may be missing announcements, it answers no key from memory",
        "service/auth.py",
        "return self._invalidations is None or self._invalidations.trustworthy",
        "return True",
        ("tests/integration/test_key_cache.py",),
    ),
    Mutant(
        "token-read-waits",
        "a read with a consistency token waits for a standby up to its bound before the primary answers it",
        "service/read/replicas.py",
        "deadline = time.monotonic() + self.token_wait",
        "deadline = time.monotonic() + min(self.token_wait, 0.5)",
        ("tests/replication/test_read_router.py",),
    ),
]


def run(mutant: Mutant) -> str:
    """'killed', 'survived' or 'stale' (the original text is not in the file)."""
    path = ROOT / mutant.path
    source = path.read_text()
    if source.count(mutant.original) != 1:
        return "stale"
    path.write_text(source.replace(mutant.original, mutant.mutated))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not browser",
             *mutant.tests],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
    finally:
        path.write_text(source)
    # Exit 1: a test failed (killed). 0: all passed (survived). Anything else
    # (collection errors, no tests) would hide a survivor: count it as one.
    if result.returncode == 1:
        return "killed"
    if result.returncode != 0:
        print(result.stdout[-3000:])
    return "survived"


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or m.name in argv]
    if not chosen:
        print(f"no such mutant: {argv}; known: {', '.join(m.name for m in MUTANTS)}")
        return 2
    outcomes = {}
    for mutant in chosen:
        started = time.monotonic()
        outcomes[mutant.name] = outcome = run(mutant)
        print(f"{outcome:>8}  {mutant.name:<24} {time.monotonic() - started:5.0f}s  {mutant.promise}", flush=True)
    killed = sum(o == "killed" for o in outcomes.values())
    print(f"{killed} of {len(outcomes)} mutants of the promises killed")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
