"""Just enough of the W3C WebDriver protocol (https://www.w3.org/TR/webdriver2/) to drive
Debian's headless Chromium through its chromedriver: open a page, find elements, send real
pointer events, run a script, take screenshots. A few dozen lines of urllib against a
protocol that is a standard keep the test suite free of a browser-automation dependency.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the key WebDriver names element references by


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def chromedriver() -> str | None:
    return shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(RuntimeError):
    pass


class Browser:
    """A headless Chromium session, driven through chromedriver on a loopback port."""

    def __init__(self, width: int = 1300, height: int = 1400):
        port = _free_port()
        self.driver = subprocess.Popen([chromedriver(), f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline:
                self.driver.kill()
                raise WebDriverError("chromedriver did not start within 20 s")
            time.sleep(0.1)
        options = {"binary": chromium(), "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                   "--disable-dev-shm-usage", f"--window-size={width},{height}"]}
        session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"/session/{session['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        if body is None and method == "POST":
            body = {}  # chromedriver wants a JSON object with every POST
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as e:
            raise WebDriverError(f"{method} {path}: {e.read().decode()[:500]}") from None

    def command(self, method: str, path: str, body: dict | None = None):
        return self._call(method, self.session + path, body)

    # ---- what the tests use

    def open(self, url: str) -> None:
        self.command("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self.command("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def run(self, script: str, *args):
        """Run ``script`` (a function body; ``arguments`` holds ``args``) in the page; its return value."""
        return self.command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_for(self, script: str, *args, timeout: float = 20.0, what: str = "the page"):
        """Poll ``script`` until it returns something truthy; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise WebDriverError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.1)

    def click(self, css: str) -> None:
        self.command("POST", f"/element/{self.find(css)}/click")

    def pointer(self, css: str, path: list[tuple[int, int]], pressed: bool = True) -> None:
        """Real pointer events on element ``css``: move to the first point of ``path`` (offsets
        from the element's centre), press, move through the rest, release (without ``pressed``,
        only the moves: hovering)."""
        element = {ELEMENT: self.find(css)}
        self.run("arguments[0].scrollIntoView({block: 'center'})", element)  # pointer moves stay in the viewport
        moves = [{"type": "pointerMove", "duration": 30, "origin": element, "x": x, "y": y} for x, y in path]
        actions = [moves[0]]
        if pressed:
            actions.append({"type": "pointerDown", "button": 0})
        actions += moves[1:]
        if pressed:
            actions.append({"type": "pointerUp", "button": 0})
        self.command("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse",
                                                       "parameters": {"pointerType": "mouse"}, "actions": actions}]})
        self.command("DELETE", "/actions")

    def screenshot(self, css: str, path: Path) -> Path:
        element = self.find(css)
        self.run("arguments[0].scrollIntoView({block: 'start'})", {ELEMENT: element})
        png = self.command("GET", f"/element/{element}/screenshot")
        path.write_bytes(base64.b64decode(png))
        return path

    def close(self) -> None:
        try:
            self.command("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
