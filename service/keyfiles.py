"""Secret files on disk (the embedded database's passwords, the ledger signing key).

Created with O_EXCL and mode 0600 — a file planted in advance makes creation fail
instead of being written into — and read only when they are regular files owned
by this process's user and readable by nobody else (DESIGN "Security (v2)").
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


class UnsafeKeyFile(RuntimeError):
    """A secret file whose type, owner or mode lets someone else read or plant it."""


def write_private_file(path: Path, data: bytes) -> None:
    """Write a new file holding `data`, mode 0600; FileExistsError if `path` exists.
    The file appears whole (hard link of a complete temporary file), so a reader
    never sees half of it and of several concurrent writers exactly one wins."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_private_file(path: Path) -> bytes:
    """The contents of a secret file, refused unless it is a regular file (not a
    link), owned by this user, with no permission for group or others."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno == 40:  # ELOOP: a symbolic link
            raise UnsafeKeyFile(f"{path} is a symbolic link; refusing to read a secret through it") from None
        raise
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeKeyFile(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UnsafeKeyFile(f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})")
        if info.st_mode & 0o077:
            raise UnsafeKeyFile(
                f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; a secret file must be 0600 (chmod 600 {path})"
            )
        return file.read()
