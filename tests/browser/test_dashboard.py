"""The dashboard in a real browser, over the real API, with the demo recorded."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest
from tests.browser.cdp import Browser, ConsoleMessage, Context, Page

from service.auth import Role, create_key
from tests.browser.conftest import DEMO_SLUG, DemoServer

pytestmark = pytest.mark.browser

# DESIGN's example report, as the status rules fold it (tests/unit/test_example_report.py).
STATUSES_NOW = {
    "ceasefire": "agreed",
    "humanitarian-corridors": "partially_agreed",
    "leaders-meeting": "under_discussion",
    "security-guarantees": "under_discussion",
    "neutral-status": "proposal_on_table",
    "weapons-in-ukraine": "proposal_on_table",
    "nato-membership": "raised",
}
# On 5 March the first local ceasefire and the first corridor were agreed; the
# corridors Ukraine rejected came on the 7th, the other issues later still.
STATUSES_ON_5_MARCH = {"ceasefire": "agreed", "humanitarian-corridors": "agreed"}

BOARD_READY = '[data-testid="board"][data-state="ready"]'


async def board_statuses(page: Page) -> dict[str, str]:
    return await page.eval_on_selector_all(
        '[data-testid="issue-card"]', "cards => Object.fromEntries(cards.map(c => [c.dataset.issue, c.dataset.status]))"
    )


async def wait_for_board(page: Page, point: str) -> None:
    await page.wait_for_selector(f'{BOARD_READY}[data-point="{point}"]', timeout=10_000)


def unexpected(message: ConsoleMessage) -> bool:
    # The page asks GET /events to learn whether the key may audit; a reader's
    # 403 there is the expected answer, which Chromium logs as a failed load.
    expected_refusal = "status of 403" in message.text and "/events?" in message.location.get("url", "")
    return message.type == "error" and not expected_refusal


async def open_with_key(chromium: Browser, server: DemoServer, key: str) -> tuple[Context, Page, list[str]]:
    context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if unexpected(message) else None)
    await page.goto(server.base_url + "/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Use key").click()
    await wait_for_board(page, "now")
    return context, page, problems


async def test_a_reader_sees_the_board_and_travels_in_world_and_record_time(
    chromium: Browser, demo_server: DemoServer, screenshot_dir: Path
) -> None:
    context, page, problems = await open_with_key(chromium, demo_server, demo_server.reader_key)
    try:
        # The key stays in this tab's session storage, never in the address.
        assert demo_server.reader_key not in await page.evaluate("location.href")
        assert await page.evaluate("sessionStorage.getItem('parley.apiKey')") == demo_server.reader_key
        assert await page.locator("#api-key").input_value() == ""

        await page.get_by_role("link", name="Russia-Ukraine talks 2022").wait_for()
        assert await board_statuses(page) == STATUSES_NOW
        # Each party's position, open proposals and whom they await.
        security = page.locator('[data-issue="security-guarantees"]')
        position = security.locator('[data-testid="position"][data-party="RU"]')
        assert await position.get_attribute("data-stance") == "demands"
        demands = page.locator('[data-issue="neutral-status"] [data-proposal="russian-demands"]')
        assert await demands.get_attribute("data-state") == "open"
        assert await demands.locator('[data-testid="awaiting"]').inner_text() == "awaiting Ukraine"
        rejected = page.locator('[data-issue="humanitarian-corridors"] [data-testid="item"][data-state="rejected"]')
        assert await rejected.count() == 2
        assert await page.locator('[data-testid="timeline-entry"]').count() >= 30
        assert await page.locator('[data-testid="round"]').count() == 4
        # A reader key is not offered the auditor's view.
        assert await page.locator('[data-testid="audit"]').is_hidden()
        await page.screenshot(path=str(screenshot_dir / "dashboard-now.png"), full_page=True)

        # World time: back to the first day, then forward to 5 March.
        await page.get_by_label("Show the world as of").focus()
        await page.keyboard.press("Home")
        await wait_for_board(page, "2022-02-28")
        assert await board_statuses(page) == {}
        for _ in range(5):
            await page.keyboard.press("ArrowRight")
        await wait_for_board(page, "2022-03-05")
        assert await page.locator("#time-value").inner_text() == "2022-03-05"
        assert await board_statuses(page) == STATUSES_ON_5_MARCH
        assert await page.locator('[data-testid="timeline-entry"][data-later="true"]').count() > 0
        await page.screenshot(path=str(screenshot_dir / "dashboard-as-of-2022-03-05.png"), full_page=True)

        # Record time: the record as it stood after its first entries.
        await page.get_by_label("As recorded at").check()
        await wait_for_board(page, "now")
        assert await board_statuses(page) == STATUSES_NOW
        await page.get_by_label("Show the record as it stood at").focus()
        await page.keyboard.press("Home")
        await page.wait_for_selector(f'{BOARD_READY}[data-axis="known_at"]:not([data-point="now"])')
        assert await board_statuses(page) == {}, "only the opening of the negotiation was recorded then"
        before = await page.locator('[data-testid="board"]').get_attribute("data-point")
        for _ in range(6):
            await page.keyboard.press("ArrowRight")
        await page.wait_for_function(
            "before => { const b = document.querySelector('[data-testid=board]');"
            " return b.dataset.state === 'ready' && b.dataset.point !== before; }",
            arg=before,
        )
        recorded_then = await board_statuses(page)
        assert recorded_then and recorded_then != STATUSES_NOW
        await page.screenshot(path=str(screenshot_dir / "dashboard-known-at.png"), full_page=True)
        assert problems == []
    finally:
        await context.close()


async def test_an_auditor_sees_the_event_log_its_verification_and_the_checkpoint(
    chromium: Browser, demo_server: DemoServer, screenshot_dir: Path
) -> None:
    context, page, problems = await open_with_key(chromium, demo_server, demo_server.auditor_key)
    try:
        audit = page.locator('[data-testid="audit"]')
        await audit.wait_for(state="visible", timeout=10_000)
        await page.wait_for_selector('[data-testid="event-row"]')
        assert await page.locator('[data-testid="event-row"]').count() >= 30
        await page.wait_for_selector('[data-testid="verify-verdict"][data-ok="true"]', timeout=10_000)
        await page.locator('[data-testid="checkpoint"] > *').first.wait_for(timeout=10_000)
        await audit.scroll_into_view_if_needed()
        await page.screenshot(path=str(screenshot_dir / "dashboard-auditor.png"), full_page=True)
        assert problems == []
    finally:
        await context.close()


async def test_a_wrong_key_is_told_so_and_nothing_is_shown(chromium: Browser, demo_server: DemoServer) -> None:
    context = await chromium.new_context()
    page = await context.new_page()
    try:
        await page.goto(demo_server.base_url + "/")
        await page.get_by_label("API key").fill("pk_000000000000_not-a-key")
        await page.get_by_role("button", name="Use key").click()
        await page.wait_for_selector('[data-testid="message"][data-kind="error"]')
        assert "not accepted" in await page.locator('[data-testid="message"]').inner_text()
        assert await page.locator('[data-testid="negotiation"]').is_hidden()
    finally:
        await context.close()


async def test_a_disputed_claim_is_flagged_where_it_is_shown(
    chromium: Browser, demo_server: DemoServer, screenshot_dir: Path
) -> None:
    # Test data, not part of the report: Ukraine contests that Russia's demands
    # were handed over, recorded through the API like any client would.
    conn = await asyncpg.connect(demo_server.database_url)
    try:
        recorder = await create_key(conn, "browser-test-recorder", Role.RECORDER)
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=demo_server.base_url, headers={"Authorization": f"Bearer {recorder}"}) as api:
        history = (await api.get(f"/negotiations/{DEMO_SLUG}/issues/neutral-status/history")).json()["items"]
        [demands] = [e for e in history if e["type"] == "proposal.made"]
        response = await api.post(
            f"/negotiations/{DEMO_SLUG}/commands",
            json={"type": "claim.disputed", "occurred_on": "2022-03-17", "event_id": demands["id"], "by": "UA",
                  "summary": "no demands were received"},
        )
        assert response.status_code == 201, response.text
        token = response.json()["consistency_token"]
        # The read models have caught up with the dispute before the page reads them.
        ready = await api.get(f"/negotiations/{DEMO_SLUG}/issues/neutral-status", params={"consistency_token": token})
        assert ready.json()["disputes"]

    context, page, problems = await open_with_key(chromium, demo_server, demo_server.reader_key)
    try:
        card = page.locator('[data-issue="neutral-status"]')
        assert await card.locator('[data-testid="issue-disputed"]').inner_text() == "1 disputed claim"
        proposal = card.locator('[data-proposal="russian-demands"]')
        assert await proposal.locator('[data-testid="disputed"]').is_visible()
        assert "no demands were received" in await card.locator('[data-testid="dispute"]').inner_text()
        # The dispute does not change the status: a contested claim keeps its effect.
        assert await card.get_attribute("data-status") == "proposal_on_table"
        await card.screenshot(path=str(screenshot_dir / "dashboard-disputed-card.png"))
        assert problems == []
    finally:
        await context.close()


async def test_agreement_states_and_implementation_extent_are_shown(
    chromium: Browser, demo_server: DemoServer, screenshot_dir: Path
) -> None:
    # Test data: an agreement signed, rejected in a referendum, superseded by a
    # renegotiated one that is ratified and partly implemented (Colombia, 2016-).
    conn = await asyncpg.connect(demo_server.database_url)
    try:
        recorder = await create_key(conn, "browser-test-agreements", Role.RECORDER)
    finally:
        await conn.close()
    parties = [{"code": "CO", "name": "Colombia"}, {"code": "FARC", "name": "FARC-EP"}]
    day = "2016-08-24"
    commands = [
        {"type": "issue.raised", "occurred_on": "2012-10-18", "issue": "land", "title": "Rural reform", "category": "land"},
        {"type": "agreement.reached", "occurred_on": day, "issue": "land", "agreement_id": "first", "level": "final",
         "parties": ["CO", "FARC"], "summary": "Final agreement"},
        {"type": "agreement.rejected", "occurred_on": "2016-10-02", "agreement_id": "first", "by": "CO",
         "method": "referendum", "result": {"yes": 49.78, "no": 50.21}},
        {"type": "agreement.reached", "occurred_on": "2016-11-24", "issue": "land", "agreement_id": "revised",
         "level": "final", "parties": ["CO", "FARC"], "summary": "Revised final agreement"},
        {"type": "agreement.superseded", "occurred_on": "2016-11-24", "agreement_id": "first", "by_agreement": "revised"},
        {"type": "agreement.ratified", "occurred_on": "2016-11-30", "agreement_id": "revised", "by": "CO",
         "method": "legislature", "body": "Congress of Colombia"},
        {"type": "agreement.implemented", "occurred_on": "2017-12-01", "agreement_id": "revised", "extent": "intermediate"},
    ]
    async with httpx.AsyncClient(base_url=demo_server.base_url, headers={"Authorization": f"Bearer {recorder}"}) as api:
        opened = await api.post("/negotiations", json={"title": "Havana talks", "slug": "havana-browser",
                                                        "parties": parties, "occurred_on": "2012-10-18"})
        assert opened.status_code == 201, opened.text
        response = await api.post("/negotiations/havana-browser/commands", json={"commands": commands})
        assert response.status_code == 201, response.text
        token = response.json()["consistency_token"]
        ready = await api.get("/negotiations/havana-browser", params={"consistency_token": token})
        assert ready.status_code == 200, ready.text

    # Opened at its own address (with two negotiations the page picks none by itself).
    context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if unexpected(message) else None)
    try:
        await page.goto(demo_server.base_url + "/#/negotiations/havana-browser")
        await page.get_by_label("API key").fill(demo_server.reader_key)
        await page.get_by_role("button", name="Use key").click()
        await wait_for_board(page, "now")
        await page.wait_for_selector('[data-issue="land"]', timeout=10_000)
        card = page.locator('[data-issue="land"]')
        assert await card.get_attribute("data-status") == "implementing"
        first = card.locator('[data-agreement="first"]')
        revised = card.locator('[data-agreement="revised"]')
        assert (await first.get_attribute("data-state"), await first.get_attribute("data-in-force")) == ("superseded", "false")
        assert await first.locator('[data-testid="not-in-force"]').is_visible()
        assert "rejected by Colombia (referendum" in await first.inner_text()
        assert (await revised.get_attribute("data-state"), await revised.get_attribute("data-extent")) == (
            "implemented", "intermediate")
        assert "implemented: intermediate (2017-12-01)" in await revised.locator('[data-testid="extent"]').inner_text()
        assert "ratified by Colombia (legislature, Congress of Colombia)" in await revised.inner_text()
        await card.screenshot(path=str(screenshot_dir / "dashboard-agreements-card.png"))
        assert problems == []
    finally:
        await context.close()
