"""A small asyncio JSON-RPC client for a Bitcoin node (Bitcoin Core, bcoin, ...), on aiohttp.

One connection per call: a node's RPC is on the same machine or LAN, a call is a few milliseconds,
and a fresh connection per call means a node that restarted never leaves us holding a dead socket.
aiohttp does the HTTP (chunked bodies, bad lengths, over-long header lines are its parser's errors);
this module caps the body, decodes the JSON defensively and turns every failure into one exception
family whose text is the one line a user should see. The URL may carry credentials
(http://user:pass@host:port), an IPv6 host ([::1]) and https (a node behind a TLS proxy).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from miner import USER_AGENT

RPC_IN_WARMUP = -28  # Bitcoin Core: the node is still loading (block index, wallet, ...)
MAX_RESPONSE = 64 << 20  # a template with a full mempool is a few MB; anything bigger is wrong
MAX_HEADER_LINE = 8190  # aiohttp's default, named: a node's headers are a few short lines
READ_CHUNK = 1 << 16


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
    scheme: str = "http"
    user: str = ""  # from the URL, when it carries credentials
    password: str = field(default="", repr=False)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def address(self) -> str:
        """The URL to post to, without credentials (they go in the Authorization header)."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    def __str__(self) -> str:  # never shows the credentials
        return f"{self.scheme}://{self.netloc}{self.path if self.path != '/' else ''}"


def parse_rpc_url(url: str) -> RpcEndpoint:
    """[http|https]://[USER:PASS@]HOST:PORT[/path]; a bare HOST:PORT is taken as http."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"rpc url {url!r}: only http:// or https:// (a node behind a TLS proxy)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"rpc url {url!r}: bad port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"rpc url {url!r}: needs a host and a port, like http://127.0.0.1:18443")
    return RpcEndpoint(parts.hostname, port, parts.path or "/", parts.scheme,
                       unquote(parts.username or ""), unquote(parts.password or ""))


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


def _first_line(text: object, limit: int = 120) -> str:
    """aiohttp's parser errors quote the bad bytes over several lines; a log line wants one."""
    lines = str(text).strip().splitlines()
    return lines[0].strip()[:limit] if lines else ""


def _error_code(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class RpcClient:
    def __init__(self, url: str, user: str = "", password: str = "", cookie: str | Path | None = None,
                 timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None):
        self.endpoint = parse_rpc_url(url)
        # --rpc-user/--rpc-pass win over the URL's; the cookie file wins over both.
        self.user = user or self.endpoint.user
        self.password = password or self.endpoint.password
        self.cookie = cookie
        self.timeout = timeout
        self.ssl_context = ssl_context  # None: the system's CAs, with host name checks
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
        except aiohttp.ClientConnectorCertificateError as exc:
            raise NodeUnreachable(f"node {self}: TLS certificate refused ({exc.certificate_error})") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                raise NodeUnreachable(f"node {self}: connection refused (is the node running?)") from None
            raise NodeUnreachable(f"node {self}: cannot connect ({exc.os_error.strerror or exc.os_error})") from None
        except aiohttp.ServerDisconnectedError:
            raise NodeUnreachable(f"node {self}: connection lost during {method} (closed)") from None
        except aiohttp.ClientResponseError as exc:  # the parser refused the status line or headers
            raise NodeUnreachable(f"node {self}: not an HTTP answer to {method} ({_first_line(exc.message)})") from None
        except aiohttp.ClientPayloadError:  # bad chunk sizes, a body shorter than its length
            raise NodeUnreachable(f"node {self}: broken HTTP body in the answer to {method}") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise NodeUnreachable(f"node {self}: connection lost during {method} ({reason})") from None
        if status in (401, 403):
            if self.cookie:
                how = "the cookie file"
            elif self.endpoint.user and self.user == self.endpoint.user:
                how = "the user:pass in the URL"
            else:
                how = "--rpc-user/--rpc-pass"
            raise NodeAuthError(f"node {self}: HTTP {status}, wrong RPC credentials (check {how})")
        try:
            reply = json.loads(payload)
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            raise NodeError(f"node {self}: HTTP {status}, not a JSON-RPC answer to {method}") from None
        if not isinstance(reply, dict):
            raise NodeError(f"node {self}: HTTP {status}, not a JSON-RPC answer to {method}")
        error = reply.get("error")
        if error:
            if isinstance(error, dict):
                raise RpcError(method, _error_code(error.get("code")), _first_line(error.get("message", ""), 200))
            raise RpcError(method, 0, _first_line(error, 200))
        if status != 200:  # Core answers RPC errors with 500 and a body, handled above
            raise NodeError(f"node {self}: HTTP {status} for {method}")
        return reply.get("result")

    async def _post(self, body: bytes, auth: str) -> tuple[int, bytes]:
        headers = {"User-Agent": USER_AGENT, "Authorization": f"Basic {auth}",
                   "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(force_close=True, ssl=self.ssl_context or True)
        async with (aiohttp.ClientSession(connector=connector, max_line_size=MAX_HEADER_LINE,
                                          max_field_size=MAX_HEADER_LINE, auto_decompress=False) as session,
                    session.post(self.endpoint.address, data=body, headers=headers,
                                 allow_redirects=False) as response):
            if response.content_length is not None and response.content_length > MAX_RESPONSE:
                raise NodeError(f"node {self}: answer of {response.content_length} bytes, over the "
                                f"{MAX_RESPONSE >> 20} MB a template can need")
            payload = bytearray()
            while chunk := await response.content.read(READ_CHUNK):
                payload += chunk
                if len(payload) > MAX_RESPONSE:
                    raise NodeError(f"node {self}: answer over the {MAX_RESPONSE >> 20} MB a template can need")
            return response.status, bytes(payload)
