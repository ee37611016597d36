"""Drive headless Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no Python
dependency, no port. Loads a page, collects console errors, exceptions and network requests, evaluates
expressions, takes a screenshot and prints to PDF."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AVAILABLE = Path(CHROMIUM).exists()


@dataclass
class Rendered:
    """What a page did while loading, and what was asked of it afterwards."""

    errors: list[str] = field(default_factory=list)  # console errors, exceptions, log errors (CSP...)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""
    pdf: bytes = b""


# a tiny trampoline: put the pipe on descriptors 3 and 4, where the browser expects it, then exec it
_TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


class _Cdp:
    def __init__(self, user_data: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = [
            "--headless",
            "--no-sandbox",  # tests may run as root in CI containers
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--remote-debugging-pipe",
            f"--user-data-dir={user_data}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _TRAMPOLINE,
                str(to_chrome_r),
                str(from_chrome_w),
                CHROMIUM,
                *args,
            ],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)  # type: ignore[no-any-return]

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> Any:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            reply = self._read(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def render(
    page: Path,
    *,
    expressions: dict[str, str] | None = None,
    width: int = 1100,
    height: int = 1400,
    screenshot: Path | None = None,
    full_page: bool = False,
    pdf: bool = False,
    media: str | None = None,
    pdf_options: dict[str, Any] | None = None,
) -> Rendered:
    """Load ``page`` in headless Chromium and report what happened.

    ``media="print"`` lays the page out with its print style sheet (``@media print``) before the
    expressions run; ``pdf_options`` are ``Page.printToPDF`` parameters (paper size in inches, margins).
    """
    out = Rendered()
    with tempfile.TemporaryDirectory(prefix="gr-chromium-") as user_data:
        cdp = _Cdp(user_data)
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                cdp.send(f"{domain}.enable", session=session)
            cdp.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            if media is not None:
                cdp.send("Emulation.setEmulatedMedia", {"media": media}, session=session)
            cdp.events.clear()
            cdp.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            cdp.wait_for("Page.loadEventFired")
            for name, expression in (expressions or {}).items():
                result = cdp.send(
                    "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
                )
                if "exceptionDetails" in result:
                    raise RuntimeError(f"{name}: {result['exceptionDetails'].get('text')}")
                out.values[name] = result["result"].get("value")
            shot = cdp.send(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": full_page},
                session=session,
            )
            out.screenshot = base64.b64decode(shot["data"])
            if screenshot is not None:
                screenshot.write_bytes(out.screenshot)
            if pdf:
                printed = cdp.send("Page.printToPDF", dict(pdf_options or {}), session=session)
                out.pdf = base64.b64decode(printed["data"])
        finally:
            cdp.close()
    for event in cdp.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {}).get("description", "")
            out.errors.append(f"exception: {details.get('text')} {thrown}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            out.errors.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            out.errors.append(f"log {params['entry'].get('source')}: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            out.requests.append(params["request"]["url"])
    return out
