"""Soak: the fault-injection tests of tests/reliability run again and again (and the
fuzzer with many more examples), with the figures each run prints gathered.

    uv run python -m bench.soak_reliability --rounds 5 --fuzz-examples 100

Each round runs, in fresh databases: `parley serve` killed with -9 during a burst
of concurrent commands; a `parley project` runner killed with -9 mid-batch with a
standby; PostgreSQL stopped for ~4 s under load. Any failure stops the soak with
pytest's output.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

FAULTS = "test_serve_killed_during_a_burst or test_runner_killed_mid_batch or test_postgres_stopped_under_load"


def run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-W", "ignore", *args],
        env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"soak failed: pytest {' '.join(args)}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fuzz-examples", type=int, default=100)
    options = parser.parse_args()
    env = dict(os.environ, PARLEY_FUZZ_EXAMPLES=str(options.fuzz_examples))
    lines: dict[str, list[str]] = {"crash": [], "failover": [], "outage": [], "fuzzed": []}
    started = time.monotonic()
    for round_ in range(1, options.rounds + 1):
        output = run(["tests/reliability/test_crash.py", "tests/reliability/test_outage.py", "-k", FAULTS], env)
        for kind in ("crash", "failover", "outage"):
            found = re.findall(rf"^{kind}: .*$", output, re.M)
            lines[kind].extend(found)
            for line in found:
                print(f"round {round_}: {line}", flush=True)
    output = run(["tests/reliability/test_fuzz.py"], env)
    lines["fuzzed"] = re.findall(r"^fuzzed .*$", output, re.M)
    print(*lines["fuzzed"], sep="\n")

    def numbers(kind: str, pattern: str) -> list[float]:
        return [float(m) for line in lines[kind] for m in re.findall(pattern, line)]

    acked = numbers("crash", r"^crash: (\d+) acknowledged")
    verified = numbers("crash", r"(\d+) events verified") + numbers("outage", r"(\d+) events verified") + numbers(
        "failover", r"failover: (\d+) events")
    back = numbers("crash", r"back in ([\d.]+)s")
    took_over = numbers("failover", r"caught up ([\d.]+)s")
    first_write = numbers("outage", r"first write ([\d.]+)s")
    slowest = numbers("outage", r"slowest (\d+) ms")
    print("\nsummary")
    print(f"  faults injected: {len(lines['crash'])} server kills, {len(lines['failover'])} runner kills, "
          f"{len(lines['outage'])} PostgreSQL stops")
    print(f"  acknowledged commands checked after kills: {int(sum(acked))}; events verified: {int(sum(verified))}")
    if back:
        print(f"  serve back after kill -9 (restart to live): max {max(back):.1f}s")
    if took_over:
        print(f"  standby runner caught up after kill -9: max {max(took_over):.1f}s")
    if first_write:
        print(f"  first acknowledged write after PostgreSQL returned: max {max(first_write):.2f}s; "
              f"slowest 503 while down: {max(slowest):.0f} ms")
    print(f"  wall time: {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
