"""Running the web app's Node side from pytest: `npm ci` when needed, and the WebPeer driver."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
NODE = shutil.which("node") or "node"
NPM = shutil.which("npm") or "npm"
CALL_DEADLINE_S = 60.0
_install_lock = threading.Lock()


def npm_ci() -> None:
    """Install web/node_modules from web/package-lock.json unless it is already current."""
    marker = WEB / "node_modules" / ".package-lock.json"
    with _install_lock:
        lock = WEB / "package-lock.json"
        if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
            return
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, timeout=600,
            stdout=subprocess.DEVNULL,
        )


class WebPeer:
    """web/tests/web_peer.mjs as a child process: `call(op, **args)` answers within a deadline."""

    def __init__(self, home: Path) -> None:
        npm_ci()
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._stderr = (home / "web_peer.stderr").open("w")
        self.proc = subprocess.Popen(
            [NODE, str(WEB / "tests" / "web_peer.mjs")],
            cwd=WEB,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self._stderr_path = home / "web_peer.stderr"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self._next(CALL_DEADLINE_S) == {"ok": True, "result": "ready"}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def _next(self, timeout: float) -> Any:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("web peer did not answer within %.0f s" % timeout) from None
        if line is None:
            raise AssertionError(
                "web peer exited %r: %s" % (self.proc.wait(10), self._stderr_path.read_text())
            )
        return json.loads(line)

    def call(self, op: str, **args: Any) -> Any:
        """Run one command; its result, or AssertionError with the web peer's error."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        answer = self._next(CALL_DEADLINE_S)
        if not answer["ok"]:
            raise AssertionError("web peer %s failed: %s" % (op, answer["error"]))
        return answer["result"]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> WebPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
