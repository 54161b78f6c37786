"""A small asyncio JSON-RPC client for a Bitcoin node (Bitcoin Core, bcoin, ...).

Plain HTTP/1.1 over `asyncio.open_connection`, one connection per call: a node's RPC is on the
same machine or LAN, a call is a few milliseconds, and a fresh connection per call means a node
that restarted never leaves us holding a dead socket. Errors come out as one exception family
whose text is the one line a user should see.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from miner import USER_AGENT

RPC_IN_WARMUP = -28  # Bitcoin Core: the node is still loading (block index, wallet, ...)
MAX_RESPONSE = 64 << 20  # a template with a full mempool is a few MB; anything bigger is wrong


class NodeError(Exception):
    """Anything that stopped a call; str() is the one line to show."""


class NodeUnreachable(NodeError):
    """No answer at all: refused, reset, timed out, not HTTP."""


class NodeAuthError(NodeError):
    """HTTP 401/403: the user, password or cookie is wrong."""


class RpcError(NodeError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str):
        super().__init__(f"{method}: node error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message

    @property
    def warming_up(self) -> bool:
        return self.code == RPC_IN_WARMUP


@dataclass(frozen=True)
class RpcEndpoint:
    host: str
    port: int
    path: str

    def __str__(self) -> str:
        return f"http://{self.host}:{self.port}{self.path if self.path != '/' else ''}"


def parse_rpc_url(url: str) -> RpcEndpoint:
    """http://HOST:PORT[/path] (a bare HOST:PORT is taken as http). https is not offered by nodes."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme != "http":
        raise ValueError(f"rpc url {url!r}: only http:// is supported (node RPC has no TLS)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"rpc url {url!r}: bad port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"rpc url {url!r}: needs a host and a port, like http://127.0.0.1:18443")
    return RpcEndpoint(parts.hostname, port, parts.path or "/")


def read_cookie(path: str | Path) -> tuple[str, str]:
    """Bitcoin Core's cookie file: one line `__cookie__:PASSWORD`, rewritten at every node start."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise NodeAuthError(f"rpc cookie {path}: cannot read it ({exc.strerror or exc})") from None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise NodeAuthError(f"rpc cookie {path}: not a USER:PASSWORD line")
    return user, password


class RpcClient:
    def __init__(self, url: str, user: str = "", password: str = "", cookie: str | Path | None = None,
                 timeout: float = 30.0):
        self.endpoint = parse_rpc_url(url)
        self.user = user
        self.password = password
        self.cookie = cookie
        self.timeout = timeout
        self._ids = itertools.count(1)

    def __str__(self) -> str:
        return str(self.endpoint)

    def _auth(self) -> str:
        # The cookie is read on every call: Core writes a new one each time it starts.
        user, password = read_cookie(self.cookie) if self.cookie else (self.user, self.password)
        return base64.b64encode(f"{user}:{password}".encode()).decode()

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """One call; its result, or a NodeError. timeout=None uses the client's default."""
        body = json.dumps({"jsonrpc": "1.0", "id": next(self._ids), "method": method,
                           "params": list(params)}).encode()
        limit = self.timeout if timeout is None else timeout
        auth = self._auth()  # a missing cookie file is its own error, before any connection
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the call completes, and a miner that is stopping must stop.
            async with asyncio.timeout(limit):
                status, payload = await self._post(body, auth)
        except TimeoutError:
            raise NodeUnreachable(f"node {self}: no answer to {method} within {limit:g}s") from None
        except ConnectionRefusedError:
            raise NodeUnreachable(f"node {self}: connection refused (is the node running?)") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise NodeUnreachable(f"node {self}: connection lost during {method} ({reason})") from None
        if status in (401, 403):
            how = "the cookie file" if self.cookie else "--rpc-user/--rpc-pass"
            raise NodeAuthError(f"node {self}: HTTP {status}, wrong RPC credentials (check {how})")
        try:
            reply = json.loads(payload)
        except ValueError:
            raise NodeError(f"node {self}: HTTP {status}, not a JSON-RPC answer to {method}") from None
        if not isinstance(reply, dict):
            raise NodeError(f"node {self}: HTTP {status}, not a JSON-RPC answer to {method}")
        error = reply.get("error")
        if error:
            if isinstance(error, dict):
                raise RpcError(method, int(error.get("code", 0)), str(error.get("message", "")))
            raise RpcError(method, 0, str(error))
        if status != 200:  # Core answers RPC errors with 500 and a body, handled above
            raise NodeError(f"node {self}: HTTP {status} for {method}")
        return reply.get("result")

    async def _post(self, body: bytes, auth: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(self.endpoint.host, self.endpoint.port)
        try:
            request = (
                f"POST {self.endpoint.path} HTTP/1.1\r\n"
                f"Host: {self.endpoint.host}:{self.endpoint.port}\r\n"
                f"User-Agent: {USER_AGENT}\r\n"
                f"Authorization: Basic {auth}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode() + body
            writer.write(request)
            await writer.drain()
            return await read_http_response(reader)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def read_http_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.x response (Content-Length, chunked, or until close)."""
    status_line = await reader.readline()
    if not status_line:
        raise asyncio.IncompleteReadError(b"", None)
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise OSError(0, "not an HTTP response")
    status = int(fields[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = await reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            if len(body) + size > MAX_RESPONSE:
                raise OSError(0, "response too large")
            body += await reader.readexactly(size)
            await reader.readline()  # the CRLF after each chunk
        return status, bytes(body)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_RESPONSE:
            raise OSError(0, "response too large")
        return status, await reader.readexactly(length)
    return status, await reader.read(MAX_RESPONSE)
