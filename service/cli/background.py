"""The projection runner and the sealer in processes of their own.

`parley project` runs the projection runner, `parley seal` the ledger sealer,
each in its own process and event loop (`run_until_stopped`). `parley serve
--workers N` with N > 1 starts one of each beside its N API workers
(`Supervisor`) and tells the workers to run neither (PARLEY_BACKGROUND=
elsewhere, service.config): N API event loops then answer requests only, and
neither the runner's folds nor the sealer's hashing and signing take turns with
them. With one worker both stay in the API process, as `parley serve` has
always run (one process to start, nothing to supervise).

Decisions:
- Two processes, not one: the runner and the sealer share nothing but the
  database, and a fault in one (or its restart) leaves the other running.
- The supervisor restarts a child that fails while serve is up (a non-zero exit
  or a signal it did not handle: a database that went away, a crash), after a pause that grows to 30 s while it keeps failing.
  Correctness never depends on it: the runner resumes from its committed
  checkpoint and the sealer from the stored leaves, and any other process
  (another node's runner, a `parley project` elsewhere) may hold them meanwhile.
- No orphans: stopping serve stops its children (SIGTERM, then SIGKILL after
  15 s); a child whose supervisor is gone without stopping it (SIGKILL) notices
  within a second that its parent changed and stops itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from service.bootstrap import Runtime

log = logging.getLogger("parley.background")

# Set by the Supervisor in its children: the pid they must outlive no longer than a second.
SUPERVISOR_PID = "PARLEY_SUPERVISOR_PID"


async def run_until_stopped(runtime: Runtime, what: str) -> None:
    """Wait until SIGINT/SIGTERM, the supervisor's death, or a background task ends
    (its error is raised: the process exits non-zero and its supervisor restarts it)."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    waits = [asyncio.create_task(stopped.wait(), name="parley-stop")]
    supervisor = os.environ.get(SUPERVISOR_PID)
    if supervisor:
        waits.append(asyncio.create_task(_outlive_no_longer_than(int(supervisor)), name="parley-parent"))
    print(f"{what}; Ctrl-C stops", file=sys.stderr, flush=True)
    done, _ = await asyncio.wait([*runtime.background, *waits], return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    for task in done:
        if task in runtime.background and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def _outlive_no_longer_than(pid: int) -> None:
    # Once the supervisor is gone this process is re-parented (to init or a subreaper).
    while os.getppid() == pid:
        await asyncio.sleep(1)
    log.warning("the parley serve that started this process (pid %d) is gone: stopping", pid)


class Supervisor:
    """Child `parley` processes started with serve, kept running, stopped with it."""

    def __init__(self, commands: Sequence[Sequence[str]], env: Mapping[str, str], stop_timeout: float = 15) -> None:
        self.commands = [list(command) for command in commands]
        self.env = {**env, SUPERVISOR_PID: str(os.getpid())}
        self.stop_timeout = stop_timeout
        self.processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        # stdout/stderr are serve's own: the children's log lines land where its do.
        return subprocess.Popen([sys.executable, "-m", "service.cli", *command], env=self.env)

    def start(self) -> None:
        with self._lock:
            self.processes = [self._spawn(command) for command in self.commands]
        self._watcher = threading.Thread(target=self._keep_running, name="parley-supervisor", daemon=True)
        self._watcher.start()

    def _keep_running(self) -> None:
        pauses = [1.0] * len(self.commands)
        started = [time.monotonic()] * len(self.commands)
        while not self._stopping.wait(0.5):
            for index, process in enumerate(list(self.processes)):
                # 0 is a child that was asked to stop (SIGINT/SIGTERM: Ctrl-C reaches
                # the whole process group, or an operator stopped it): left stopped.
                if process.poll() is None or process.returncode == 0:
                    continue
                # A child that ran a minute was healthy: its next failure starts the pauses over.
                pause = 1.0 if time.monotonic() - started[index] > 60 else pauses[index]
                log.warning(
                    "`parley %s` (pid %d) exited with %s; restarting in %.0f s",
                    " ".join(self.commands[index]), process.pid, process.returncode, pause,
                )
                if self._stopping.wait(pause):
                    return
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self.processes[index] = self._spawn(self.commands[index])
                started[index] = time.monotonic()
                pauses[index] = min(pause * 2, 30.0)

    def stop(self) -> None:
        """SIGTERM every child, SIGKILL those still running after stop_timeout; all reaped."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            for process in self.processes:
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + self.stop_timeout
            for process in self.processes:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("`parley` child %d did not stop within %.0f s: killed", process.pid, self.stop_timeout)
                    process.kill()
                    process.wait()
