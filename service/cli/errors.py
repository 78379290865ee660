"""How every `parley` command fails: one line on stderr and a non-zero exit status,
never a traceback (PARLEY_DEBUG=1 shows it, for whoever debugs Parley itself).

Exit statuses: 2 for a usage error (argparse, a file that cannot be read), 1 for
anything else that went wrong, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (usage stays with --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    text = " ".join(str(error).split())  # multi-line messages (asyncpg, PostgreSQL) folded onto one line
    name = type(error).__name__
    if not text:
        return name
    if isinstance(error, (OSError, ConnectionError, TimeoutError)) or "connect" in name.lower():
        return f"cannot connect: {text}"
    return text if len(text) <= 400 else text[:400] + "…"


def run_reporting_errors(run: Callable[[], int]) -> int:
    try:
        return run()
    except KeyboardInterrupt:
        print("parley: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the point: no traceback for users
        if os.environ.get("PARLEY_DEBUG"):
            raise
        print(f"parley: {one_line(error)}", file=sys.stderr)
        return 1
