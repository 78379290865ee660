"""A Parley workload through its public API: negotiations with issues on which
parties keep stating positions (always a valid command, and one that touches only
its issue's stream, so concurrent recorders on different issues never conflict)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass

import httpx

PARTIES = [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]
STANCES = ["demands", "proposes", "supports", "accepts", "open_to", "conditional", "opposes", "rejects", "undecided"]
CATEGORIES = ["security_guarantees", "political_status", "territory", "humanitarian", "prisoners_detainees"]


@dataclass(frozen=True)
class IssueRef:
    negotiation_id: str
    key: str

    @property
    def status_path(self) -> str:
        return f"/negotiations/{self.negotiation_id}/issues/{self.key}"

    @property
    def commands_path(self) -> str:
        return f"/negotiations/{self.negotiation_id}/commands"


def position(key: str, n: int, day: int = 16) -> dict:
    party = PARTIES[n % 2]["code"]
    return {
        "type": "position.stated",
        "occurred_on": f"2022-03-{1 + day % 28:02d}",
        "issue": key,
        "party": party,
        "stance": STANCES[n % len(STANCES)],
        "summary": f"Statement {n} of {party} on {key}",
        "source": {"outlet": "RBC", "speaker": "Sergey Lavrov", "published_on": "2022-03-16"},
        "claimed_by": [party],
    }


def client(base_url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


async def open_negotiation(http: httpx.AsyncClient, index: int, run: str) -> str:
    response = await http.post(
        "/negotiations",
        json={
            "title": f"Benchmark talks {index}",
            "slug": f"bench-{run}-{index}",
            "parties": PARTIES,
            "occurred_on": "2022-02-28",
        },
    )
    response.raise_for_status()
    return response.json()["negotiation_id"]


async def record(http: httpx.AsyncClient, negotiation_id: str, command: dict) -> dict:
    response = await http.post(f"/negotiations/{negotiation_id}/commands", json=command)
    if response.status_code >= 400:
        raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
    return response.json()


async def seed(base_url: str, key: str, negotiations: int, issues_each: int) -> list[IssueRef]:
    """Open negotiations, raise issues and state a first position on each."""
    run = f"{random.randrange(16**6):06x}"
    refs: list[IssueRef] = []
    async with client(base_url, key) as http:

        async def one(index: int) -> list[IssueRef]:
            negotiation_id = await open_negotiation(http, index, run)
            made = []
            for i in range(issues_each):
                issue_key = f"issue-{i}"
                await record(
                    http,
                    negotiation_id,
                    {"type": "issue.raised", "occurred_on": "2022-03-01", "issue": issue_key,
                     "title": f"Issue {i}", "category": CATEGORIES[i % len(CATEGORIES)]},
                )  # fmt: skip
                await record(http, negotiation_id, position(issue_key, 0))
                made.append(IssueRef(negotiation_id, issue_key))
            return made

        # A few at a time: seeding is not what is measured.
        for start in range(0, negotiations, 8):
            for made in await asyncio.gather(*(one(i) for i in range(start, min(start + 8, negotiations)))):
                refs.extend(made)
    return refs


async def wait_until_projected(base_url: str, key: str, timeout: float = 120) -> None:
    """Until every projection has caught up with the log (readiness reports lag)."""
    deadline = time.monotonic() + timeout
    async with client(base_url, key) as http:
        while time.monotonic() < deadline:
            ready = (await http.get("/health/ready")).json()
            lags = ready.get("projections", [])
            if lags and all((lag.get("events_behind") or 0) == 0 for lag in lags):
                return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"projections still behind after {timeout}s: {ready}")


def command_bodies(refs: list[IssueRef], count: int, seed: int = 1) -> list[tuple[str, str]]:
    """(path, JSON body) pairs spread evenly over the issues, in a shuffled order."""
    rng = random.Random(seed)
    counter = itertools.count(1)
    pairs = [(ref.commands_path, json.dumps(position(ref.key, next(counter), rng.randrange(28)))) for ref in refs]
    bodies = [pairs[i % len(pairs)] for i in range(count)]
    rng.shuffle(bodies)
    return bodies
