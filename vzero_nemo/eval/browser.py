"""Open a report in headless Chromium and check what a reader would see.

    python -m vzero_nemo.eval.browser runs/tiny_cpu/report.html --screenshot shot.png

Chromium (Debian's `chromium` package) is driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`, standard library only): the page is loaded from disk in a
1280 px wide window and the check reports console errors and uncaught exceptions, images that
did not load (natural width 0), and horizontal overflow (document wider than the window). A
screenshot of the top of the page (`--height` px) is saved when asked.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PAGE_CHECKS = """(() => ({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
                                                  width: i.naturalWidth})),
  scrollWidth: document.documentElement.scrollWidth,
  clientWidth: document.documentElement.clientWidth,
  height: document.documentElement.scrollHeight,
}))()"""


@dataclass(slots=True)
class PageCheck:
    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    scroll_width: int = 0
    client_width: int = 0
    height: int = 0

    @property
    def broken_images(self) -> list[str]:
        return [i["alt"] for i in self.images if not i["complete"] or i["width"] <= 0]

    @property
    def horizontal_overflow_px(self) -> int:
        return max(0, self.scroll_width - self.client_width)

    @property
    def ok(self) -> bool:
        return (
            not self.console_errors and not self.broken_images and not self.horizontal_overflow_px
        )


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        f"no Chromium found (looked for {', '.join(BROWSERS)}); install Debian's `chromium`"
    )


class _Pipe:
    """DevTools protocol over Chromium's fds 3 (commands in) and 4 (messages out)."""

    def __init__(self, browser: str, width: int, height: int) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def child_fds() -> None:
            # Via fds >= 10 first: a pipe end may itself be fd 3 or 4, and dup2 onto itself
            # would keep its close-on-exec flag. dup2 makes 3 and 4 inheritable.
            high_r, high_w = (
                fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10),
                fcntl.fcntl(out_w, fcntl.F_DUPFD, 10),
            )
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        args = [
            browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--remote-debugging-pipe", "--hide-scrollbars", f"--window-size={width},{height}",
            "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, close_fds=False, preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out_r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, timeout_s: float = 30, **params):
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout_s: float = 30) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout_s
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._cmd_w)
        os.close(self._out_r)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            out.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            out.append(params["entry"].get("text", "error"))
    return out


def check_page(
    html: Path, screenshot: Path | None = None, width: int = 1280, height: int = 2000
) -> PageCheck:
    """Load `html` from disk at `width` px and check it (see the module docstring)."""
    pipe = _Pipe(find_browser(), width, height)
    try:
        target = pipe.call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in target if t["type"] == "page")
        session = pipe.call("Target.attachToTarget", targetId=page, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.call(f"{domain}.enable", session)
        pipe.call(
            "Emulation.setDeviceMetricsOverride", session,
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        pipe.call("Page.navigate", session, url=html.resolve().as_uri())
        pipe.wait_event("Page.loadEventFired", timeout_s=60)
        result = pipe.call("Runtime.evaluate", session, expression=PAGE_CHECKS, returnByValue=True)
        value = result["result"]["value"]
        check = PageCheck(
            console_errors=_errors(pipe.events),
            images=value["images"],
            scroll_width=value["scrollWidth"],
            client_width=value["clientWidth"],
            height=value["height"],
        )
        if screenshot is not None:
            shot = pipe.call("Page.captureScreenshot", session, format="png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return check
    finally:
        pipe.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vzero_nemo.eval.browser")
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the top of the page")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000, help="window (and screenshot) height")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: {args.html} is not a file", file=sys.stderr)
        return 2
    check = check_page(args.html, args.screenshot, args.width, args.height)
    print(
        f"[browser] {len(check.images)} images, broken {check.broken_images}; console errors "
        f"{check.console_errors}; horizontal overflow {check.horizontal_overflow_px} px at "
        f"{args.width} px; page height {check.height} px"
    )
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
