"""Headless Chromium driven over the DevTools protocol: load a page, collect its console errors, uncaught
exceptions and network requests, take a screenshot. Debian's `chromium` package is installed where missing."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from websockets.sync.client import connect

BINARY = "chromium"


def ensure_chromium() -> str:
    """The path of Chromium, installing Debian's package first if it is not there."""
    found = shutil.which(BINARY)
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", BINARY], check=True,
                   capture_output=True, timeout=900)
    found = shutil.which(BINARY)
    if not found:
        raise RuntimeError("apt-get installed chromium but it is not on PATH")
    return found


@dataclass
class Page:
    """What loading one page showed."""

    screenshot: bytes
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    text: str = ""

    def blank(self) -> bool:
        """True when (almost) every pixel of the screenshot has one colour."""
        image = Image.open(io.BytesIO(self.screenshot)).convert("RGB")
        colours = image.getcolors(maxcolors=image.width * image.height) or []
        commonest = max(count for count, _ in colours)
        return commonest > 0.995 * image.width * image.height


class Chromium:
    """One headless browser process with a fresh profile."""

    def __init__(self, binary: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="troupe-chromium-")
        self._proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={self._profile}",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "--window-size=1280,1000",
             "--no-first-run", "--disable-extensions", "--disable-background-networking", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self._proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                self._port = int(match.group(1))
                threading.Thread(target=self._proc.stderr.read, daemon=True).start()  # keep its pipe from filling
                return
            if not line and self._proc.poll() is not None:
                break
        self.close()
        raise RuntimeError("chromium did not start its DevTools endpoint")

    def load(self, url: str, settle: float = 0.5) -> Page:
        """Open `url` in a new tab, wait for its load event and `settle` seconds more, and report what happened."""
        new = urllib.request.Request(f"http://127.0.0.1:{self._port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(new, timeout=10) as r:
            target = json.loads(r.read())
        try:
            return self._drive(target["webSocketDebuggerUrl"], url, settle)
        finally:
            urllib.request.urlopen(f"http://127.0.0.1:{self._port}/json/close/{target['id']}", timeout=10).close()

    def _drive(self, ws_url: str, url: str, settle: float) -> Page:
        errors: list[str] = []
        requests: list[str] = []
        with connect(ws_url, max_size=None, open_timeout=10) as ws:
            counter = iter(range(1, 10**6))

            def call(method: str, **params: Any) -> dict[str, Any]:
                ident = next(counter)
                ws.send(json.dumps({"id": ident, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=30))
                    if msg.get("id") == ident:
                        if "error" in msg:
                            raise RuntimeError(f"{method}: {msg['error']}")
                        return dict(msg.get("result", {}))
                    note(msg)

            def note(msg: dict[str, Any]) -> None:
                method, params = msg.get("method"), msg.get("params", {})
                if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                    errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
                elif method == "Runtime.exceptionThrown":
                    errors.append(params["exceptionDetails"].get("exception", {}).get("description", "exception"))
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    errors.append(params["entry"]["text"])
                elif method == "Network.requestWillBeSent":
                    requests.append(params["request"]["url"])

            for domain in ("Runtime", "Log", "Network", "Page"):
                call(f"{domain}.enable")
            call("Page.navigate", url=url)
            deadline = time.monotonic() + 30
            loaded = False
            while not loaded and time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=30))
                note(msg)
                loaded = msg.get("method") == "Page.loadEventFired"
            end = time.monotonic() + settle
            while time.monotonic() < end:
                try:
                    note(json.loads(ws.recv(timeout=max(end - time.monotonic(), 0.01))))
                except TimeoutError:
                    break
            shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            text = call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                        returnByValue=True)["result"].get("value", "")
        return Page(base64.b64decode(shot["data"]), errors, [u for u in requests if u != url], text)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)


def file_url(path: Path) -> str:
    return path.resolve().as_uri()
