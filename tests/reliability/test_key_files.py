"""Secret files on disk (issue 15 finding 6): the ledger signing key is created with
O_EXCL and mode 0600, and a key file that someone else could read or have planted
(wrong mode, wrong owner, a symbolic link) is refused, not used with a warning."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.audit.ledger import load_or_create_key
from service.keyfiles import UnsafeKeyFile
from tests.reliability.conftest import ROOT, parley_env


def _pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_a_new_key_file_is_private(tmp_path):
    path = tmp_path / "keys" / "ledger.pem"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path).public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    assert [p.name for p in path.parent.iterdir()] == ["ledger.pem"]  # no temporary left behind


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_open_to_others_is_refused(tmp_path, mode):
    path = tmp_path / "ledger.pem"
    path.write_bytes(_pem())
    path.chmod(mode)
    with pytest.raises(UnsafeKeyFile, match="0600"):
        load_or_create_key(path)


def test_a_key_file_of_another_owner_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    path = tmp_path / "ledger.pem"
    path.write_bytes(_pem())
    path.chmod(0o600)
    os.chown(path, 65534, 65534)  # nobody planted it
    with pytest.raises(UnsafeKeyFile, match="owned by"):
        load_or_create_key(path)


def test_a_symbolic_link_as_key_file_is_refused(tmp_path):
    real = tmp_path / "elsewhere.pem"
    real.write_bytes(_pem())
    real.chmod(0o600)
    link = tmp_path / "ledger.pem"
    link.symlink_to(real)
    with pytest.raises(UnsafeKeyFile, match="symbolic link"):
        load_or_create_key(link)
    dangling = tmp_path / "dangling.pem"
    dangling.symlink_to(tmp_path / "planted-target.pem")
    with pytest.raises(UnsafeKeyFile):
        load_or_create_key(dangling)
    assert not (tmp_path / "planted-target.pem").exists(), "a key was written through a planted link"


def test_parley_serve_refuses_a_readable_key_file_with_one_line(database_url, tmp_path):
    path = tmp_path / "ledger.pem"
    path.write_bytes(_pem())
    path.chmod(0o644)
    done = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--port", "1"],
                          env=parley_env(database_url, PARLEY_LEDGER_KEY_FILE=str(path), PARLEY_DATA_DIR=str(tmp_path)),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "chmod 600" in done.stderr, done.stderr[-3000:]
