"""`PARLEY_LOG_LEVEL` is what a real `parley serve` prints, all of it: at `ERROR`
no INFO or WARNING line reaches its output, from our loggers, Litestar's or
uvicorn's (the bug of issue 19: Litestar's logging config installed its own
handler and printed INFO lines whatever the setting).

The same run at `INFO` is the control: it must print the lines the `ERROR` run
must not (a WARNING at start — a fresh data directory generates the ledger's
signing key — and an INFO line per request), so the `ERROR` assertion cannot
pass by the server printing nothing at all."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest

from domain.example import OPENED
from tests.reliability.conftest import free_port, kill_group, start_serve, wait_ready

# Ours (`LEVEL:logger:message`), uvicorn's (`INFO:     …`) and Litestar's
# (`INFO - <time> - …`) formats all start with the level's name.
LOG_LINE = re.compile(r"^\s*(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\b", re.MULTILINE)


def serve_and_request(database_url: str, data_dir: Path, level: str, keys) -> str:
    """Start serve at `level`, make requests that log, stop it: its whole output."""
    port = free_port()
    log = data_dir / "serve.log"
    data_dir.mkdir()
    process = start_serve(database_url, port, log, PARLEY_LOG_LEVEL=level, PARLEY_DATA_DIR=str(data_dir))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log)
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/health/ready").status_code == 200
            opened = {**OPENED, "slug": f"log-level-{level.lower()}"}
            assert http.post("/negotiations", json=opened, headers=keys.headers("recorder")).status_code == 201
            assert http.post("/negotiations", json=opened, headers=keys.headers("recorder")).status_code == 409
            assert http.get("/negotiations/no-such-talks", headers=keys.headers("reader")).status_code == 404
            assert http.get("/negotiations", headers={"Authorization": "Bearer pk_wrong"}).status_code == 401
    finally:
        kill_group(process, signal.SIGTERM)
    return log.read_text(errors="replace")


@pytest.mark.timeout(300)
def test_log_level_error_prints_no_info_or_warning_line(database_url, tmp_path, keys) -> None:
    control = serve_and_request(database_url, tmp_path / "info", "INFO", keys)
    levels = {m["level"] for m in LOG_LINE.finditer(control)}
    assert {"INFO", "WARNING"} <= levels, control[-3000:]
    assert "generated the ledger signing key" in control and "parley.http" in control, control[-3000:]

    quiet = serve_and_request(database_url, tmp_path / "error", "ERROR", keys)
    printed = [line for line in quiet.splitlines() if (m := LOG_LINE.match(line)) and m["level"] in {"DEBUG", "INFO", "WARNING"}]
    assert printed == [], quiet[-3000:]
