"""Fuzzing: schemathesis generates requests for every operation of the app's own
OpenAPI document (as served by a running `parley serve`) with an admin key, valid
(positive) and invalid (negative) ones, and runs every check it has except
positive-data acceptance (a valid-looking request may still name nothing, or break
a domain rule: a 404 or 422 is then right): no 5xx, status codes, content types,
headers and bodies as documented, invalid data rejected, missing required headers
and unsupported methods refused (with `Allow`), authentication not ignored
(issue 16).

Bounded for CI: PARLEY_FUZZ_EXAMPLES examples per operation (default 15).
`GET /events/stream` is a Server-Sent Events stream that never ends, so it is
left out here; tests/reliability/test_security.py checks its answers.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from tests.reliability.conftest import PARTIES, Keys, free_port, start_serve, wait_ready

EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "15"))
SKIPPED = {("GET", "/events/stream")}
# Every check schemathesis has, but positive-data acceptance.
checks.load_all_checks()
CHECKS = [check for check in checks.CHECKS.get_all() if check is not checks.positive_data_acceptance]


def _seed(base: str, keys: Keys) -> dict[str, str]:
    with httpx.Client(base_url=base, headers=keys.headers("admin"), timeout=30) as http:
        opened = http.post("/negotiations", json={"title": "Fuzz talks", "slug": "fuzz", "parties": PARTIES,
                                                  "occurred_on": "2022-03-01"})
        assert opened.status_code == 201, opened.text
        for command in (
            {"type": "issue.raised", "occurred_on": "2022-03-02", "issue": "security", "title": "Security",
             "category": "security_guarantees"},
            {"type": "proposal.made", "occurred_on": "2022-03-03", "issue": "security", "proposal_id": "p1",
             "by": "RU", "to": ["UA"], "summary": "guarantees"},
            {"type": "ceasefire.proposed", "occurred_on": "2022-03-04", "ceasefire_id": "c1", "by": "UA",
             "scope": "local"},
        ):
            response = http.post("/negotiations/fuzz/commands", json=command)
            assert response.status_code == 201, response.text
        return {"ref": "fuzz", "key": "security", "negotiation_id": opened.json()["negotiation_id"]}


@pytest.mark.timeout(600)
def test_every_operation_survives_fuzzing_and_matches_its_schema(database_url, keys, tmp_path: Path, processes):
    port = free_port()
    log = tmp_path / "serve.log"
    # schemathesis sends many unauthenticated requests and expects 401/403 to each:
    # the failed-key throttle (tested on its own) would answer 429 after ten.
    process = start_serve(database_url, port, log, PARLEY_DATA_DIR=str(tmp_path),
                          PARLEY_AUTH_FAILURE_LIMIT="1000000")
    processes.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    seed = _seed(base, keys)
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    auth = keys.headers("admin")
    tried: dict[str, int] = {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    started = time.monotonic()
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        if key in SKIPPED:
            continue
        label = f"{key[0]} {key[1]}"
        strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                             operation.as_strategy(GenerationMode.NEGATIVE))
        if "{" in operation.path:
            # Half the cases name things that exist, so the 200 answers are fuzzed too.
            def aim(case, use_seed):
                if use_seed and case.path_parameters:
                    case.path_parameters = {k: seed.get(k, v) for k, v in case.path_parameters.items()}
                return case

            strategy = st.tuples(strategy, st.booleans()).map(lambda pair: aim(*pair))

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(case=strategy)
        def fuzz(case) -> None:
            tried[label] = tried.get(label, 0) + 1
            response = case.call(base_url=base, headers=auth, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            fuzz()
        except Exception as error:  # collect every operation's failure, then report them all
            failures.append(f"{label}: {type(error).__name__}: {str(error)[:1500]}")
    seconds = time.monotonic() - started
    print(f"\nfuzzed {sum(tried.values())} requests over {len(tried)} operations in {seconds:.1f}s: {tried}")
    assert not failures, "\n\n".join(failures)
    assert len(tried) == len(operations) - len(SKIPPED)
    assert process.poll() is None, "the server died under fuzzing"
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]
