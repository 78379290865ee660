"""A real Prometheus scraping `parley serve --workers 2` (issue 18, Done when): the
request counts it reads back through its HTTP query API are exactly the requests
sent through both workers, by the status sent (401s as 401), summed over them.

Per-process counters (the hand-written exposition this replaced) could not pass:
each scrape reached one worker at random and saw its counts alone.

Needs Debian's `prometheus` (`.ci/run` installs it). Without it the test is
skipped with a loud reason; PARLEY_REQUIRE_PROMETHEUS=1 (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client import multiprocess

from tests.api.conftest import Keys
from tests.reliability.conftest import free_port, kill_group, start_serve, wait_ready
from tests.reliability.test_serve_workers import connections_to_each_worker

CEILING = 120  # seconds: a bound that fails loudly on a stalled machine, not a speed claim
REQUESTS = "parley_http_requests_total"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        reason = ("PROMETHEUS NOT INSTALLED: the Prometheus scrape test did not run "
                  "(apt-get install prometheus; .ci/run does)")
        if os.environ.get("PARLEY_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(reason + " (PARLEY_REQUIRE_PROMETHEUS=1)")
        pytest.skip(reason)
    return found


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def counted_by_each_worker(metrics_dir: Path, pids: list[int]) -> dict[int, float]:
    """GET /negotiations as each worker's own files hold it (prometheus_client's
    merge of one process's files: no Parley code)."""
    counted = {}
    for pid in pids:
        files = [str(p) for p in metrics_dir.glob(f"*_{pid}.db")]
        counted[pid] = sum(
            s.value
            for family in multiprocess.MultiProcessCollector.merge(files, accumulate=True)
            for s in family.samples
            if s.name == REQUESTS and s.labels.get("path") == "/negotiations" and s.labels.get("method") == "GET"
        )
    return counted


def query(base: str, promql: str) -> dict[str, float]:
    """An instant query through Prometheus's HTTP API: {status_code: value}."""
    response = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return {r["metric"].get("status_code", ""): float(r["value"][1]) for r in body["data"]["result"]}


@pytest.mark.timeout(600)
async def test_prometheus_reads_the_exact_counts_summed_over_two_workers(
    database_url: str, keys: Keys, tmp_path: Path, processes
) -> None:
    binary = prometheus_binary()
    port = free_port()
    log = tmp_path / "serve.log"
    # PROMETHEUS_MULTIPROC_DIR unset: serve makes one for its workers.
    process = start_serve(database_url, port, log, workers=2, PARLEY_DATA_DIR=str(tmp_path),
                          # Each worker throttles failed keys on its own: not what is counted here.
                          PARLEY_AUTH_FAILURE_LIMIT="1000")
    processes.append(process)
    wait_ready(f"http://127.0.0.1:{port}", process, log)
    workers = connections_to_each_worker(port, psutil.Process(process.pid))
    one, two = workers.values()
    metrics_dirs = {psutil.Process(pid).environ().get("PROMETHEUS_MULTIPROC_DIR") for pid in workers}
    assert len(metrics_dirs) == 1 and None not in metrics_dirs, metrics_dirs
    metrics_dir = Path(metrics_dirs.pop())

    reader = keys.headers("reader")
    # Through each worker its own mix: 200s, 401s without a key or with an unknown one.
    plan = [(one, reader, 200, 7), (one, {}, 401, 3), (two, reader, 200, 5),
            (two, {"Authorization": "Bearer pk_nope_nope"}, 401, 4), (two, {}, 401, 2)]
    for conn, headers, status, times in plan:
        for _ in range(times):
            assert await asyncio.to_thread(get, conn, "/negotiations", headers) == status
    expected = {"200": 12.0, "401": 9.0}
    # Both workers answered some: each one's own files hold its share (a request is
    # counted once its answer is sent, so the last one may be counted just after
    # the client has it: waited for, with a ceiling).
    shares = dict(zip(workers, (10.0, 11.0)))
    deadline = time.monotonic() + CEILING
    while (counted := counted_by_each_worker(metrics_dir, list(workers))) != shares:
        assert time.monotonic() < deadline, (counted, shares)
        await asyncio.sleep(0.1)

    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: parley\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        f"      credentials: {keys.keys['reader']}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
    )
    prometheus_log = tmp_path / "prometheus.log"
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=open(prometheus_log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115
    )
    processes.append(prometheus)
    base = f"http://127.0.0.1:{web}"
    promql = f'sum by (status_code) ({REQUESTS}{{job="parley",method="GET",path="/negotiations"}})'
    deadline = time.monotonic() + CEILING
    seen: object = None
    while True:
        if prometheus.poll() is not None:
            raise AssertionError(f"prometheus exited: {prometheus_log.read_text(errors='replace')[-3000:]}")
        try:
            up = query(base, 'up{job="parley"}')
            seen = query(base, promql)
        except httpx.HTTPError as error:
            seen = error
        else:
            if up == {"": 1.0} and seen == expected:
                break
        assert time.monotonic() < deadline, (
            f"Prometheus did not read {expected} within {CEILING} s; last: {seen}; "
            f"{prometheus_log.read_text(errors='replace')[-2000:]}"
        )
        await asyncio.sleep(0.5)

    # Not one 5xx for the refusals; the histograms add up over the workers too.
    assert query(base, f'{REQUESTS}{{job="parley",status_code=~"5.."}}') == {}
    assert query(base, 'sum(parley_http_request_duration_seconds_count{job="parley",method="GET",'
                       'path="/negotiations"})') == {"": 21.0}
    # Several scrapes later the sum is the same, whichever worker answered them.
    scrapes = query(base, 'count_over_time(up{job="parley"}[1m])')[""]
    while query(base, 'count_over_time(up{job="parley"}[1m])')[""] < scrapes + 3:
        assert time.monotonic() < deadline + CEILING, "Prometheus stopped scraping"
        await asyncio.sleep(0.5)
    assert query(base, promql) == expected
    assert query(base, f'min_over_time(sum by (status_code) ({REQUESTS}{{job="parley",method="GET",'
                       f'path="/negotiations"}})[20s:1s])') == expected

    for conn in workers.values():
        conn.close()
    prometheus.send_signal(signal.SIGTERM)
    kill_group(process, signal.SIGTERM)
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert not metrics_dir.exists(), "serve removes the directory it made"
