"""Load from a separate process: wrk (C, epoll), one thread, N connections, a Lua
script cycling through prepared requests and printing its figures as JSON.

wrk costs far less CPU per request than a Python client, which matters on two
cores shared with the server and PostgreSQL. `apt-get install wrk` if missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n@@{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Prepared:
    method: str
    path: str
    body: str | None = None


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def per_second(self) -> float:
        # Failed requests are not throughput.
        return (self.requests - self.non_2xx - self.socket_errors) / self.seconds if self.seconds else 0.0


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def script(requests: Sequence[Prepared], headers: dict[str, str]) -> str:
    entries = ",\n".join(
        "{%s,%s,%s}" % (_lua_string(r.method), _lua_string(r.path), _lua_string(r.body) if r.body is not None else "nil")
        for r in requests
    )
    header_table = ",".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
    return (
        f"local entries = {{\n{entries}\n}}\n"
        f"local headers = {{{header_table}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        "  local e = entries[(i % #entries) + 1]\n"
        "  return wrk.format(e[1], e[2], headers, e[3])\n"
        "end\n" + _DONE
    )


def run(base_url: str, requests: Sequence[Prepared], headers: dict[str, str], connections: int, seconds: float) -> WrkResult:
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script(requests, headers))
    completed = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", lua.name, base_url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(l for l in completed.stdout.splitlines() if l.startswith("@@"))
    figures = json.loads(line[2:])
    return WrkResult(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        non_2xx=figures["status"],
        socket_errors=figures["connect"] + figures["read"] + figures["write"] + figures["timeout"],
    )
