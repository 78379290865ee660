"""The documentation, run: every shell block marked for testing, page by page, in
order, against a real `parley serve` on the test database; a page that drifts
from the code fails here.

Marking: a fenced block whose info string is `sh test` runs as it is written;
`sh test server` is a command that keeps serving (the reader runs it in another
terminal): it is started in the background and the page goes on once
`/health/ready` answers on `$PARLEY_PORT`; `sh test refusals` runs with plain
curl (its requests are meant to be refused). In every other block, curl fails
on an HTTP error (`--fail-with-body`), so a documented request that no longer
succeeds fails the page.

Each page gets a fresh database, a free port (`PARLEY_PORT`), its own data
directory and working directory; `uv run CMD` runs CMD from this environment
(the same code, without re-syncing). The database URL is the test server's
superuser's (the owner's, for the pages). Roles a page creates are the
server's, not the database's: docs/operations.md names its roles after the
database (`<database>_app`, `<database>_sealer`), and after a page every role so
named is dropped. `WITNESS_PORT` is a free port too, for the local witness of
docs/auditor-guide.md (8410 on a reader's machine). Needs curl, jq, psql and
openssl, as the pages say; without them the test is skipped with a loud reason
(PARLEY_REQUIRE_DOCS=1 makes that a failure, as `.ci/run` does).

Every ```sh block of README.md and docs/*.md is either `sh test` on a page of
PAGES, or in NOT_RUN below with the reason it cannot run here and the test that
runs the same commands instead; an unmarked `sh` block anywhere else fails
`test_every_shell_block_is_run_or_excused`. The README's own two commands are
such an exception: `uv run pytest` runs this suite, so it cannot run inside it
(and `uv run parley serve` on the embedded default is
tests/integration/test_serve.py's subject)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/client-guide.md", "docs/auditor-guide.md", "docs/operations.md"]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PAGE_TIMEOUT = 600

# The ```sh blocks that are not run, by page and first line, with why not and
# what runs the same commands. Keep it short: a block that can run is `sh test`.
NOT_RUN = {
    ("README.md", "uv run parley serve     # the API, on an embedded PostgreSQL under the data directory"): (
        "the README's two commands: `uv run pytest` is this suite, which cannot run itself; "
        "`uv run parley serve` on the embedded default is run by "
        "tests/integration/test_serve.py::test_serve_on_the_embedded_default_restarts_onto_its_data_and_stops_its_postgres"
    ),
    ("docs/operations.md", "createdb parley"): (
        "the reader's own PostgreSQL (user:password@host); `parley migrate` and `parley serve` on an existing "
        "PostgreSQL are what the page's tested 'Deployment' section runs, on the test server"
    ),
    ("docs/operations.md", "LOG_VKEY=$(curl -s https://parley.example/ledger/public-key | jq -r .vkey)   # the log's verifier key (no API key needed)"): (
        "run by a witness's operator against a deployment's URL; the same `parley witness --print-vkey` and "
        "`parley witness --log` run, against a local demo, in docs/auditor-guide.md's tested steps"
    ),
    ("docs/deployment.md", "uv run parley dev cluster --dir /tmp/parley-cluster --standbys 1 --nodes 2 --port 8100"): (
        "two more PostgreSQL servers and three parley processes on fixed ports; tests/replication/test_nodes.py "
        "starts the same topology with the command's own service.cli.dev_cluster.Nodes and LocalCluster"
    ),
}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    flags: frozenset[str]
    body: str


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    found = []
    for match in FENCE.finditer(text):
        words = match["info"].split()
        if words[:2] == ["sh", "test"]:
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(page, line, frozenset(words[2:]), match["body"]))
    return found


PRELUDE = r"""
set -euo pipefail
uv() {  # `uv run [flags] CMD…` → CMD…, from the environment under test
    if [ "${1-}" = run ]; then shift; while [ "${1#-}" != "${1-}" ]; do shift; done; "$@"; else command uv "$@"; fi
}
__fail_on_http_errors() {
    curl() {
        case " $* " in *" --fail "*|*" -f "*|*" -sf "*|*" --fail-with-body "*) command curl "$@" ;;
            *) command curl --fail-with-body "$@" ;; esac
    }
}
__plain_curl() { unset -f curl; }
__wait_ready() {  # $1: the server's pid, $2: its log
    for _ in $(seq 1 600); do
        if [ "$(command curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PARLEY_PORT/health/ready")" = 200 ]; then
            return 0
        fi
        if ! kill -0 "$1" 2>/dev/null; then echo "the server exited:" >&2; cat "$2" >&2; return 1; fi
        sleep 0.2
    done
    echo "the server was not ready within 120 s:" >&2; cat "$2" >&2; return 1
}
"""


def script(page: str) -> str:
    parts = [PRELUDE]
    for number, block in enumerate(blocks(page)):
        where = f"{block.page}:{block.line}"
        parts.append(f"printf '\\n### %s\\n' '{where}' >&2")  # output may end without a newline
        parts.append("__plain_curl" if "refusals" in block.flags else "__fail_on_http_errors")
        if "server" in block.flags:
            log = f"server-{number}.log"
            parts.append(f"( {block.body} ) > {log} 2>&1 &\n__wait_ready $! {log}")
        else:
            parts.append(block.body)
    parts.append("printf '\\n### done\\n' >&2")
    return "\n".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing_tools() -> list[str]:
    return [tool for tool in ("bash", "curl", "jq", "psql", "openssl") if shutil.which(tool) is None]


async def drop_roles_of(database_url: str) -> None:
    """Drop the roles a page named after its database (their grants first)."""
    conn = await asyncpg.connect(database_url)
    try:
        database = await conn.fetchval("SELECT current_database()")
        pattern = database.replace("_", r"\_") + r"\_%"
        for name in await conn.fetchval("SELECT array_agg(rolname) FROM pg_roles WHERE rolname LIKE $1", pattern) or []:
            await conn.execute(f'DROP OWNED BY "{name}"')
            await conn.execute(f'DROP ROLE "{name}"')
    finally:
        await conn.close()


def wait_gone(group: int, seconds: float = 20) -> None:
    """Until no process of the page's group is left (their sessions end with them)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_every_page_has_tested_blocks() -> None:
    for page in PAGES:
        assert blocks(page), f"{page} has no ```sh test block"


def every_page() -> list[str]:
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def test_every_shell_block_is_run_or_excused() -> None:
    """A ```sh block is `sh test` on a page this test runs, or in NOT_RUN."""
    unexcused, excused = [], set()
    for page in every_page():
        text = (ROOT / page).read_text()
        for match in FENCE.finditer(text):
            words = match["info"].split()
            if not words or words[0] not in {"sh", "bash", "shell", "console"}:
                continue
            line = text.count("\n", 0, match.start()) + 1
            if words[:2] == ["sh", "test"] and page in PAGES:
                continue
            key = (page, match["body"].split("\n", 1)[0])
            if key in NOT_RUN:
                excused.add(key)
            else:
                unexcused.append(f"{page}:{line} ```{match['info']}")
    assert unexcused == [], "shell blocks neither run (`sh test` on a page of PAGES) nor in NOT_RUN: " + ", ".join(unexcused)
    assert set(NOT_RUN) == excused, f"NOT_RUN names blocks that are gone: {sorted(set(NOT_RUN) - excused)}"
    # The tests an exception points to exist (and the named function in them).
    for reason in NOT_RUN.values():
        for path, name in re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", reason):
            assert (ROOT / path).is_file(), f"NOT_RUN points to {path}, which is not there"
            if name:
                assert f"def {name}(" in (ROOT / path).read_text(), f"NOT_RUN points to {path}::{name}, not there"


@pytest.mark.parametrize("page", PAGES)
def test_the_page_runs_as_written(page: str, database_url: str, tmp_path: Path) -> None:
    if missing := missing_tools():
        message = f"DOCUMENTATION NOT RUN: {', '.join(missing)} not found; install them to test the pages."
        if os.environ.get("PARLEY_REQUIRE_DOCS"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path / "work"
    work.mkdir()
    (work / "docs").symlink_to(ROOT / "docs")  # files the pages name (docs/examples/…)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        PARLEY_DATABASE_URL=database_url,
        PARLEY_DATA_DIR=str(tmp_path / "data"),
        PARLEY_PORT=str(free_port()),
        WITNESS_PORT=str(free_port()),
        PARLEY_REPO=str(ROOT),
    )
    process = subprocess.Popen(
        ["bash", "-c", script(page)], cwd=work, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{page} did not finish within {PAGE_TIMEOUT} s:\n{output[-6000:]}")
    finally:
        # The servers a page started, and anything they left.
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_gone(process.pid)
        asyncio.run(drop_roles_of(database_url))
    last = re.findall(r"^### (.*)$", output, re.MULTILINE)
    assert process.returncode == 0 and last and last[-1] == "done", (
        f"{page}: the block at {last[-1] if last else '?'} failed (exit {process.returncode}):\n{output[-6000:]}"
    )


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)|<(?P<auto>https?://[^>]+)>")


@pytest.mark.parametrize("page", every_page())
def test_links_stay_inside_the_repository(page: str) -> None:
    text = (ROOT / page).read_text()
    for match in LINK.finditer(text):
        target = match["target"] or match["auto"]
        assert "://" not in target, f"{page} links outside the repository: {target}"
        path = target.split("#")[0]
        if path:
            resolved = ((ROOT / page).parent / path).resolve()
            assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page}: {target} is not a file here"
