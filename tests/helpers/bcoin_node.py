"""A real bcoin regtest node for the tests (docs/testing.md, "The regtest node").

`.ci/run` installs bcoin into tests/node/node_modules; the tests start nodes on free loopback ports
and stop them by pid. The node's RPC is reached with urllib here, independently of the miner's
own client, so the tests check the miner against what the node says.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BCOIN = ROOT / "tests" / "node" / "node_modules" / "bcoin" / "bin" / "node"
INSTALL_HINT = "(cd tests/node && npm install --no-audit --no-fund)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeRpcError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


class BcoinNode:
    def __init__(self, port: int | None = None, api_key: str = "test-key", host: str = "127.0.0.1"):
        self.host = host  # "::1" for an IPv6 node
        self.port = port or free_port()
        self.api_key = api_key
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="bcoin-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BcoinNode:
        if not BCOIN.exists():
            raise RuntimeError(f"bcoin is not installed at {BCOIN}; run {INSTALL_HINT} (.ci/run does)")
        self.proc = subprocess.Popen(
            ["node", str(BCOIN), "--network=regtest", "--memory=true", f"--http-port={self.port}",
             f"--http-host={self.host}", f"--api-key={self.api_key}", "--listen=false", "--max-outbound=1",
             "--workers=false", "--no-wallet", "--log-level=warning"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=BCOIN.parent.parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bcoin exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                self.rpc("getblockcount")
                return self
            except (OSError, NodeRpcError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"bcoin did not answer on port {self.port} within {timeout}s: {self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_tail(self, chars: int = 2000) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-chars:]

    def close(self) -> None:
        self.stop()
        self._log.close()
        os.unlink(self._log.name)

    def rpc(self, method: str, *params, timeout: float = 30.0):
        body = json.dumps({"method": method, "params": list(params), "id": 1}).encode()
        request = urllib.request.Request(self.url + "/", data=body, headers={
            "Authorization": "Basic " + base64.b64encode(f"x:{self.api_key}".encode()).decode(),
            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            if not payload:
                raise
            reply = json.loads(payload)
        if reply.get("error"):
            raise NodeRpcError(reply["error"].get("code", 0), reply["error"].get("message", ""))
        return reply["result"]

    # ---------------------------------------------------------------- conveniences
    def block_at(self, height: int) -> dict:
        """getblock with decoded transactions (bcoin: verbose=true, details=true)."""
        return self.rpc("getblock", self.rpc("getblockhash", height), True, True)
