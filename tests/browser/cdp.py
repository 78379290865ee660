"""A small headless-Chromium driver over the DevTools protocol, for tests/browser.

Why not Playwright: it is ~161 MB of wheel that every `uv run` would install (the
default dependency group), for a system Chromium it only drives. This speaks the
Chrome DevTools Protocol over a WebSocket (`websockets`, already installed by
uvicorn[standard]) to Debian's `chromium`, and offers the few Playwright-like calls
the dashboard tests use: pages in their own browser contexts, locators by CSS,
label and role (found and acted on in the page, polled until they are there, as
Playwright's auto-waiting does), the keyboard, screenshots, and the page's errors
and console messages.

Over 300 lines on purpose: one self-contained protocol client; split, its pieces
would only be used together.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

DEFAULT_TIMEOUT = 10.0

# Installed in every evaluation: how locators find elements (steps applied in turn).
_FIND = r"""
const __norm = s => (s || "").replace(/\s+/g, " ").trim().toLowerCase();
const __visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length)
  && getComputedStyle(e).visibility !== "hidden";
const __step = (root, s) => {
  if (s.css) return [...root.querySelectorAll(s.css)];
  if (s.label) {
    const want = __norm(s.label), found = [];
    for (const label of root.querySelectorAll("label"))
      if (__norm(label.textContent).includes(want) && label.control) found.push(label.control);
    for (const e of root.querySelectorAll("[aria-label]"))
      if (__norm(e.getAttribute("aria-label")).includes(want)) found.push(e);
    return found;
  }
  if (s.role) {
    const tags = {button: "button, [role=button], input[type=submit]", link: "a[href], [role=link]"}[s.role]
      || `[role=${s.role}]`;
    return [...root.querySelectorAll(tags)].filter(e => __norm(e.textContent || e.value).includes(__norm(s.name)));
  }
  return [];
};
const __find = steps => {
  let els = [document];
  for (const s of steps) els = s.first ? els.slice(0, 1) : els.flatMap(e => __step(e, s));
  return els;
};
"""


class CDPError(RuntimeError):
    pass


@dataclass
class ConsoleMessage:
    type: str
    text: str
    location: dict[str, Any]


class Connection:
    """One WebSocket to the browser; commands by id, events to listeners by session."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future] = {}
        self.listeners: dict[str | None, list[Callable[[str, dict], None]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            if "id" in message:
                future = self.waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    if "error" in message:
                        future.set_exception(CDPError(message["error"].get("message", str(message["error"]))))
                    else:
                        future.set_result(message.get("result", {}))
            else:
                for listener in self.listeners.get(message.get("sessionId"), []):
                    listener(message["method"], message.get("params", {}))

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        number = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.waiting[number] = future
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self.socket.send(json.dumps(message))
        return await asyncio.wait_for(future, 60)


class Browser:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def new_context(self, viewport: dict[str, int] | None = None) -> "Context":
        created = await self.connection.send("Target.createBrowserContext", {"disposeOnDetach": True})
        return Context(self, created["browserContextId"], viewport or {"width": 1280, "height": 720})


@dataclass
class Context:
    browser: Browser
    id: str
    viewport: dict[str, int]

    async def new_page(self) -> "Page":
        send = self.browser.connection.send
        target = await send("Target.createTarget", {"url": "about:blank", "browserContextId": self.id})
        attached = await send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self.browser.connection, attached["sessionId"])
        await page.start(self.viewport)
        return page

    async def close(self) -> None:
        with contextlib.suppress(CDPError, asyncio.TimeoutError):
            await self.browser.connection.send("Target.disposeBrowserContext", {"browserContextId": self.id})


@dataclass
class Keyboard:
    page: "Page"
    CODES = {"Home": 36, "End": 35, "ArrowLeft": 37, "ArrowRight": 39, "ArrowUp": 38, "ArrowDown": 40, "Enter": 13}

    async def press(self, key: str) -> None:
        code = self.CODES[key]
        for kind in ("rawKeyDown", "keyUp"):
            await self.page.send(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code},
            )


@dataclass
class Page:
    connection: Connection
    session: str
    handlers: dict[str, list[Callable]] = field(default_factory=dict)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.keyboard = Keyboard(self)
        self.connection.listeners.setdefault(self.session, []).append(self._event)

    async def send(self, method: str, params: dict | None = None) -> dict:
        return await self.connection.send(method, params, self.session)

    async def start(self, viewport: dict[str, int]) -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": viewport["width"], "height": viewport["height"], "deviceScaleFactor": 1, "mobile": False},
        )

    def on(self, name: str, handler: Callable) -> None:
        self.handlers.setdefault(name, []).append(handler)

    def _emit(self, name: str, value: Any) -> None:
        for handler in self.handlers.get(name, []):
            handler(value)

    def _event(self, method: str, params: dict) -> None:
        if method == "Page.loadEventFired":
            self.loaded.set()
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self._emit("pageerror", details.get("exception", {}).get("description") or details.get("text"))
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            frame = (params.get("stackTrace") or {}).get("callFrames") or [{}]
            self._emit("console", ConsoleMessage(params["type"], text, {"url": frame[0].get("url", "")}))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            kind = "error" if entry["level"] == "error" else entry["level"]
            self._emit("console", ConsoleMessage(kind, entry.get("text", ""), {"url": entry.get("url", "")}))

    async def goto(self, url: str) -> None:
        self.loaded.clear()
        navigated = await self.send("Page.navigate", {"url": url})
        if navigated.get("errorText"):
            raise CDPError(f"{url}: {navigated['errorText']}")
        await asyncio.wait_for(self.loaded.wait(), 30)

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        source = f"(async () => {{ {_FIND}\n const arg = {json.dumps(arg)}; return await ({expression}); }})()"
        result = await self.send(
            "Runtime.evaluate", {"expression": source, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def wait_for_function(self, expression: str, arg: Any = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """`expression` is a JS function of `arg`; waits until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while not await self.evaluate(f"({expression})(arg)", arg):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout} s: {expression}")
            await asyncio.sleep(0.05)

    async def wait_for_selector(self, css: str, timeout: float = DEFAULT_TIMEOUT * 1000) -> None:
        await self.locator(css).wait_for(timeout=timeout)

    async def eval_on_selector_all(self, css: str, function: str) -> Any:
        return await self.evaluate(f"({function})([...document.querySelectorAll({json.dumps(css)})])")

    def locator(self, css: str) -> "Locator":
        return Locator(self, ({"css": css},))

    def get_by_label(self, text: str) -> "Locator":
        return Locator(self, ({"label": text},))

    def get_by_role(self, role: str, name: str) -> "Locator":
        return Locator(self, ({"role": role, "name": name},))

    async def screenshot(self, path: str, full_page: bool = False, clip: dict | None = None) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": size["width"],
                                                            "height": size["height"], "scale": 1})  # fmt: skip
        if clip:
            params.update(captureBeyondViewport=True, clip={**clip, "scale": 1})
        shot = await self.send("Page.captureScreenshot", params)
        Path(path).write_bytes(base64.b64decode(shot["data"]))


@dataclass(frozen=True)
class Locator:
    page: Page
    steps: tuple[dict, ...]

    def locator(self, css: str) -> "Locator":
        return Locator(self.page, (*self.steps, {"css": css}))

    @property
    def first(self) -> "Locator":
        return Locator(self.page, (*self.steps, {"first": True}))

    async def _on_first(self, body: str, arg: Any = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """`body` runs with `e` the first match, once there is one."""
        steps = json.dumps(self.steps)
        await self.page.wait_for_function(f"() => __find({steps}).length > 0", timeout=timeout)
        return await self.page.evaluate(f"(e => {{ {body} }})(__find({steps})[0])", arg)

    async def count(self) -> int:
        return await self.page.evaluate(f"__find({json.dumps(self.steps)}).length")

    async def is_visible(self) -> bool:
        return await self.page.evaluate(f"__find({json.dumps(self.steps)}).some(__visible)")

    async def is_hidden(self) -> bool:
        return not await self.is_visible()

    async def wait_for(self, state: str = "visible", timeout: float = DEFAULT_TIMEOUT * 1000) -> None:
        check = "some(__visible)" if state == "visible" else "length > 0"
        await self.page.wait_for_function(f"() => __find({json.dumps(self.steps)}).{check}", timeout=timeout / 1000)

    async def get_attribute(self, name: str) -> str | None:
        return await self._on_first("return e.getAttribute(arg);", name)

    async def inner_text(self) -> str:
        return await self._on_first("return e.innerText;")

    async def input_value(self) -> str:
        return await self._on_first("return e.value;")

    async def fill(self, text: str) -> None:
        await self._on_first(
            "e.focus(); e.value = arg; e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true}));",
            text,
        )

    async def click(self) -> None:
        await self._on_first("e.scrollIntoView({block: 'center'}); e.click();")

    async def check(self) -> None:
        await self._on_first("if (!e.checked) e.click();")

    async def focus(self) -> None:
        await self._on_first("e.focus();")

    async def scroll_into_view_if_needed(self) -> None:
        await self._on_first("e.scrollIntoView({block: 'nearest'});")

    async def screenshot(self, path: str) -> None:
        box = await self._on_first(
            "const r = e.getBoundingClientRect();"
            " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height};"
        )
        await self.page.screenshot(path, clip=box)


@contextlib.asynccontextmanager
async def launch(executable: str, args: list[str]) -> AsyncIterator[Browser]:
    """Chromium with a DevTools port of its own choosing, read from its stderr."""
    profile = tempfile.mkdtemp(prefix="parley-chromium-")
    process = subprocess.Popen(
        [executable, *args, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = await asyncio.to_thread(_devtools_url, process)
        async with websockets.connect(url, max_size=None, open_timeout=30) as socket:
            connection = Connection(socket)
            try:
                yield Browser(connection)
            finally:
                connection.reader.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.send("Browser.close"), 5)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_url(process: subprocess.Popen) -> str:
    seen = []
    assert process.stderr is not None
    for line in process.stderr:
        seen.append(line)
        if found := re.search(r"DevTools listening on (ws://\S+)", line):
            # Keep reading stderr in the background, so the browser never blocks on a full pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return found[1]
    raise CDPError("Chromium exited before opening its DevTools port:\n" + "".join(seen[-20:]))
