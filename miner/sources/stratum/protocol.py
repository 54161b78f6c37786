"""Stratum v1 as a state machine with no I/O, in the manner of h11.

Feed what the socket gave to `receive_data()` and get events back; call the request methods
(`subscribe()`, `submit()`, ...) and send what `data_to_send()` returns. Replies are matched to
requests by id. Everything from the pool is untrusted: malformed lines become `ProtocolError`
events, never exceptions, and the caller decides (the client reconnects on a fatal one).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from miner.core.targets import DIFF1_TARGET
from miner.core.work import swap_words

MAX_LINE = 64 * 1024
# Real Stratum lines nest 4 deep (a notify's merkle branch in params); json.loads recurses once per
# level, so a hostile 30,000-deep line would raise RecursionError wherever it is decoded.
MAX_DEPTH = 32
# Above diff1's target the share target would be 0: no hash could ever meet it (and float() of
# such a number overflows).
MAX_DIFFICULTY = DIFF1_TARGET
MIN_EXTRANONCE2_SIZE = 1  # 0 bytes leaves nothing to roll: every unit would be the same work
MAX_EXTRANONCE2_SIZE = 16  # ckpool and public-pool send 4-8; more is a hostile or broken pool
MAX_RECONNECT_WAIT = 60.0  # seconds a client.reconnect may keep us off a pool
MAX_MERKLE_BRANCH = 32  # 2**32 transactions; real branches are at most ~13 long
MAX_MESSAGE_TEXT = 512
HEX_RE = re.compile(r"[0-9a-fA-F]*")


# ------------------------------------------------------------------------------------ events
class Event:
    """Base class of everything receive_data() returns."""


@dataclass(frozen=True)
class Configured(Event):
    version_rolling: bool
    version_mask: int  # what the pool granted, already ANDed with what we asked for


@dataclass(frozen=True)
class Subscribed(Event):
    extranonce1: bytes
    extranonce2_size: int
    session_id: str | None  # to resume with later


@dataclass(frozen=True)
class Authorized(Event):
    ok: bool
    reason: str | None = None


@dataclass(frozen=True)
class NewJob(Event):
    job_id: str
    prevhash: bytes  # header order (converted from Stratum's word-swapped form)
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean: bool


@dataclass(frozen=True)
class SetDifficulty(Event):
    difficulty: Fraction


@dataclass(frozen=True)
class SetExtranonce(Event):
    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True)
class SetVersionMask(Event):
    version_mask: int  # ANDed with what we asked for


@dataclass(frozen=True)
class Reconnect(Event):
    host: str | None
    port: int | None
    wait: float


@dataclass(frozen=True)
class ShowMessage(Event):
    text: str


@dataclass(frozen=True)
class SubmitResult(Event):
    request_id: int
    accepted: bool
    reason: str | None = None  # for a reject: the pool's words
    code: int | None = None


@dataclass(frozen=True)
class RequestResult(Event):
    """The reply to any other request (extranonce.subscribe, suggest_difficulty, ...)."""

    request_id: int
    method: str
    ok: bool
    result: Any = None
    reason: str | None = None


@dataclass(frozen=True)
class ProtocolError(Event):
    """The pool said something we cannot use. fatal: the session cannot be trusted any more."""

    message: str
    fatal: bool = True


# ------------------------------------------------------------------------------------ helpers
class _Bad(Exception):
    """A field failed validation; its text names the field."""


BadField = _Bad  # the public name, for the server side (miner/server/session.py) that parses the same fields


def _hex_bytes(value: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not HEX_RE.fullmatch(value):
        raise _Bad(f"{name} is not a hex string: {_short(value)}")
    data = bytes.fromhex(value)
    if size is not None and len(data) != size:
        raise _Bad(f"{name} must be {size} bytes, got {len(data)}")
    return data


def _hex_u32(value: Any, name: str) -> int:
    if not isinstance(value, str) or len(value) != 8 or not HEX_RE.fullmatch(value):
        raise _Bad(f"{name} must be 8 hex digits, got {_short(value)}")
    return int(value, 16)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def nesting_depth(line: bytes | str) -> int:
    """How deep JSON arrays and objects nest in a line (brackets inside strings do not count)."""
    data = line.encode("utf-8", "replace") if isinstance(line, str) else line
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return data.count(b"[") + data.count(b"{")  # an upper bound, and cheap: real lines stop here
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def decode_json(line: bytes | str) -> Any:
    """json.loads for an untrusted line; ValueError (never RecursionError) for anything unusable."""
    if nesting_depth(line) > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(line)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def parse_difficulty(value: Any) -> Fraction:
    """A pool difficulty as an exact fraction; numbers or numeric strings, positive and finite."""
    if isinstance(value, bool):
        raise _Bad(f"difficulty is not a number: {_short(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(f"difficulty is not finite: {value}")
    try:
        d = Fraction(value) if isinstance(value, int | float) else Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError, TypeError):
        raise _Bad(f"difficulty is not a number: {_short(value)}") from None
    if d <= 0:
        raise _Bad(f"difficulty must be positive, got {_short(value)}")
    if d > MAX_DIFFICULTY:
        raise _Bad(f"difficulty above the largest possible (2^224): {_short(value)}")
    return d


def check_nbits(nbits: int) -> int:
    """A job's compact target must decode to a positive target below 2**256 (no sign bit)."""
    exponent, mantissa = nbits >> 24, nbits & 0x007FFFFF
    target = mantissa >> (8 * (3 - exponent)) if exponent <= 3 else mantissa << (8 * (exponent - 3))
    if target >> 256:
        raise _Bad(f"nbits {nbits:08x} is out of range (exponent {exponent}: a target over 2^256)")
    if nbits & 0x00800000:
        raise _Bad(f"nbits {nbits:08x} has the sign bit set (a negative target)")
    if target == 0:
        raise _Bad(f"nbits {nbits:08x} is out of range (a zero target)")
    return nbits


def error_reason(error: Any) -> tuple[int | None, str | None]:
    """(code, text) from an error in any of the shapes pools use (stratum.md §1.4)."""
    if error is None:
        return None, None
    if isinstance(error, list | tuple):
        code = error[0] if error and isinstance(error[0], int) and not isinstance(error[0], bool) else None
        text = error[1] if len(error) > 1 and isinstance(error[1], str) else None
        if text is None:
            text = " ".join(str(e) for e in error if e is not None)
        return code, text or None
    if isinstance(error, dict):
        code = error.get("code")
        text = error.get("message")
        return (code if isinstance(code, int) and not isinstance(code, bool) else None,
                str(text) if text is not None else _short(error))
    if isinstance(error, str):
        return None, error
    return None, _short(error)


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


# ------------------------------------------------------------------------------------ protocol
@dataclass
class _Pending:
    method: str
    params: list


@dataclass
class StratumProtocol:
    """One Stratum v1 session's wire state. Create a new one for every connection."""

    user_agent: str
    version_mask_wanted: int = 0x1FFFE000
    max_line: int = MAX_LINE
    _buffer: bytearray = field(default_factory=bytearray)
    _outbox: bytearray = field(default_factory=bytearray)
    _next_id: int = 1
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _discarding: bool = False  # inside an over-long line, dropping bytes up to its end

    # -------------------------------------------------------------------- output
    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def _request(self, method: str, params: list) -> int:
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = _Pending(method, params)
        self._outbox += encode({"id": request_id, "method": method, "params": params})
        return request_id

    def _reply(self, request_id: Any, result: Any, error: Any = None) -> None:
        self._outbox += encode({"id": request_id, "result": result, "error": error})

    def configure(self, version_rolling: bool = True, min_bit_count: int = 2) -> int:
        """BIP310 mining.configure; send it before subscribe."""
        extensions: list[str] = []
        params: dict[str, Any] = {}
        if version_rolling:
            extensions.append("version-rolling")
            params["version-rolling.mask"] = f"{self.version_mask_wanted:08x}"
            params["version-rolling.min-bit-count"] = min_bit_count
        return self._request("mining.configure", [extensions, params])

    def subscribe(self, session_id: str | None = None) -> int:
        params: list = [self.user_agent]
        if session_id:
            params.append(session_id)
        return self._request("mining.subscribe", params)

    def authorize(self, user: str, password: str) -> int:
        return self._request("mining.authorize", [user, password])

    def extranonce_subscribe(self) -> int:
        return self._request("mining.extranonce.subscribe", [])

    def suggest_difficulty(self, difficulty: float) -> int:
        # a JSON number, not a string: public-pool rejects the string form
        value: int | float = int(difficulty) if float(difficulty).is_integer() else float(difficulty)
        return self._request("mining.suggest_difficulty", [value])

    def submit(self, user: str, job_id: str, extranonce2: bytes, ntime: int, nonce: int,
               version_bits: int | None = None) -> int:
        params = [user, job_id, extranonce2.hex(), f"{ntime:08x}", f"{nonce:08x}"]
        if version_bits is not None:
            params.append(f"{version_bits:08x}")
        return self._request("mining.submit", params)

    def pending_method(self, request_id: int) -> str | None:
        pending = self._pending.get(request_id)
        return pending.method if pending else None

    @property
    def partial(self) -> bool:
        """Part of a line has come and its end has not (a pool may trickle one byte at a time)."""
        return bool(self._buffer) or self._discarding

    # -------------------------------------------------------------------- input
    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if self._discarding:
                if newline < 0:
                    self._buffer.clear()
                    return events
                del self._buffer[: newline + 1]
                self._discarding = False
                continue
            if newline < 0:
                if len(self._buffer) > self.max_line:
                    self._buffer.clear()
                    self._discarding = True
                    events.append(ProtocolError(f"line longer than {self.max_line} bytes"))
                return events
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if len(line) > self.max_line:
                events.append(ProtocolError(f"line longer than {self.max_line} bytes"))
                continue
            line = line.strip()
            if line:
                events.extend(self._handle_line(line))

    def _handle_line(self, line: bytes) -> list[Event]:
        try:
            message = decode_json(line)
        except ValueError as exc:
            return [ProtocolError(f"invalid JSON ({exc}): {_short(line)}")]
        if not isinstance(message, dict):
            return [ProtocolError(f"not a JSON object: {_short(message)}")]
        method = message.get("method")
        try:
            if isinstance(method, str):
                return self._handle_call(method, message.get("params"), message.get("id"))
            if "id" in message:
                return self._handle_reply(message)
            return [ProtocolError(f"neither a call nor a reply: {_short(message)}")]
        except _Bad as exc:
            return [ProtocolError(f"{method or 'reply'}: {exc}")]

    # server -> client calls
    def _handle_call(self, method: str, params: Any, call_id: Any) -> list[Event]:
        if params is None:
            params = []
        if not isinstance(params, list):
            raise _Bad(f"params is not a list: {_short(params)}")
        if method == "mining.notify":
            return [self._parse_notify(params)]
        if method == "mining.set_difficulty":
            if not params:
                raise _Bad("missing difficulty")
            return [SetDifficulty(parse_difficulty(params[0]))]
        if method == "mining.set_extranonce":
            if len(params) < 2:
                raise _Bad("needs extranonce1 and extranonce2_size")
            return [SetExtranonce(_hex_bytes(params[0], "extranonce1"), self._en2_size(params[1]))]
        if method == "mining.set_version_mask":
            if not params:
                raise _Bad("missing mask")
            return [SetVersionMask(_hex_u32(params[0], "version mask") & self.version_mask_wanted)]
        if method == "client.reconnect":
            return [self._parse_reconnect(params)]
        if method == "client.show_message":
            text = str(params[0]) if params else ""
            return [ShowMessage(text[:MAX_MESSAGE_TEXT])]
        if method == "client.get_version":
            if call_id is not None:
                self._reply(call_id, self.user_agent)
            return []
        if method == "mining.ping":
            if call_id is not None:
                self._reply(call_id, "pong")
            return []
        # Unknown: answer a request so the pool does not wait on us; ignore a notification.
        if call_id is not None:
            self._reply(call_id, None, [20, f"unsupported method {method}", None])
        return []

    def _en2_size(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) \
                or not MIN_EXTRANONCE2_SIZE <= value <= MAX_EXTRANONCE2_SIZE:
            raise _Bad(f"extranonce2_size must be an integer {MIN_EXTRANONCE2_SIZE}..{MAX_EXTRANONCE2_SIZE}, "
                       f"got {_short(value)}")
        return value

    def _parse_notify(self, params: list) -> NewJob:
        if len(params) < 9:
            raise _Bad(f"needs 9 params, got {len(params)}")
        job_id = params[0]
        if isinstance(job_id, int) and not isinstance(job_id, bool):
            job_id = str(job_id)
        if not isinstance(job_id, str) or not job_id:
            raise _Bad(f"job_id must be a non-empty string, got {_short(params[0])}")
        branch = params[4]
        if not isinstance(branch, list) or len(branch) > MAX_MERKLE_BRANCH:
            raise _Bad(f"merkle_branch must be a list of at most {MAX_MERKLE_BRANCH} hashes")
        clean = params[-1]  # the last param, as ESP-Miner reads it: some pools append fields
        if not isinstance(clean, bool):
            clean = params[8]
        if not isinstance(clean, bool):
            raise _Bad(f"clean_jobs must be true or false, got {_short(params[8])}")
        return NewJob(
            job_id=job_id,
            prevhash=swap_words(_hex_bytes(params[1], "prevhash", 32)),
            coinb1=_hex_bytes(params[2], "coinb1"),
            coinb2=_hex_bytes(params[3], "coinb2"),
            merkle_branch=tuple(_hex_bytes(b, "merkle branch item", 32) for b in branch),
            version=_hex_u32(params[5], "version"),
            nbits=check_nbits(_hex_u32(params[6], "nbits")),
            ntime=_hex_u32(params[7], "ntime"),
            clean=clean,
        )

    def _parse_reconnect(self, params: list) -> Reconnect:
        host = params[0] if params and params[0] not in (None, "") else None
        if host is not None and not isinstance(host, str):
            raise _Bad(f"host must be a string, got {_short(host)}")
        port: int | None = None
        if len(params) > 1 and params[1] not in (None, ""):
            try:
                port = int(params[1])
            except (TypeError, ValueError):
                raise _Bad(f"port is not a number: {_short(params[1])}") from None
            if not 0 < port < 65536:
                raise _Bad(f"port out of range: {port}")
        wait = 0.0
        if len(params) > 2 and params[2] not in (None, ""):
            try:
                wait = max(0.0, min(float(params[2]), MAX_RECONNECT_WAIT))
            except (TypeError, ValueError):
                raise _Bad(f"wait is not a number: {_short(params[2])}") from None
        return Reconnect(host, port, wait)

    # replies to our requests
    def _handle_reply(self, message: dict) -> list[Event]:
        raw_id = message.get("id")
        request_id = raw_id
        if isinstance(raw_id, str) and raw_id.isdigit():
            request_id = int(raw_id)
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            if raw_id is None:
                return [ProtocolError(f"reply without an id: {_short(message)}", fatal=False)]
            return [ProtocolError(f"reply to an id never sent: {_short(raw_id)}")]
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return [ProtocolError(f"reply to an id never sent: {_short(raw_id)}")]
        result = message.get("result")
        error = message.get("error")
        code, reason = error_reason(error)
        if reason is None and isinstance(message.get("reject-reason"), str):
            reason = message["reject-reason"]
        ok = error is None and result is not False and result is not None
        method = pending.method
        if method == "mining.submit":
            accepted = ok and result is True
            return [SubmitResult(request_id, accepted, None if accepted else (reason or "rejected"), code)]
        if method == "mining.subscribe":
            return [self._parse_subscribed(result, reason)]
        if method == "mining.authorize":
            return [Authorized(ok and result is True, None if ok else (reason or "refused"))]
        if method == "mining.configure":
            return [self._parse_configured(result if ok else None)]
        return [RequestResult(request_id, method, ok, result, reason)]

    def _parse_subscribed(self, result: Any, reason: str | None) -> Event:
        if not isinstance(result, list) or len(result) < 3:
            return ProtocolError(f"subscribe failed: {reason or _short(result)}")
        try:
            extranonce1 = _hex_bytes(result[1], "extranonce1")
            size = self._en2_size(result[2])
        except _Bad as exc:
            return ProtocolError(f"subscribe: {exc}")
        session_id = None
        subscriptions = result[0]
        if isinstance(subscriptions, list):
            for item in subscriptions:
                if isinstance(item, list) and len(item) >= 2 and item[0] == "mining.notify":
                    session_id = str(item[1])
        return Subscribed(extranonce1, size, session_id or result[1])

    def _parse_configured(self, result: Any) -> Configured:
        if not isinstance(result, dict) or result.get("version-rolling") is not True:
            return Configured(False, 0)
        try:
            granted = _hex_u32(result.get("version-rolling.mask", "ffffffff"), "version-rolling.mask")
        except _Bad:
            return Configured(False, 0)
        # public-pool answers 1fffe000 whatever was asked: never roll more than we asked for
        mask = granted & self.version_mask_wanted
        return Configured(mask != 0, mask)


# ------------------------------------------------------------------------------------ server side
# `miner serve` speaks the same wire format from the other end (docs/serve.md §1): these are the
# inverse of the parsers above, so one module owns the format both ways.
def notify_message(job_id: str, prevhash: bytes, coinb1: bytes, coinb2: bytes, merkle_branch: tuple[bytes, ...],
                   version: int, nbits: int, ntime: int, clean: bool) -> bytes:
    """A mining.notify line; prevhash in header order (sent word-swapped, as _parse_notify reads it)."""
    return encode({"id": None, "method": "mining.notify",
                   "params": [job_id, swap_words(prevhash).hex(), coinb1.hex(), coinb2.hex(),
                              [b.hex() for b in merkle_branch], f"{version:08x}", f"{nbits:08x}",
                              f"{ntime:08x}", clean]})


def call_message(method: str, params: list, call_id: Any = None) -> bytes:
    return encode({"id": call_id, "method": method, "params": params})


def reply_message(call_id: Any, result: Any, error: Any = None) -> bytes:
    if result is True and error is None and type(call_id) is int:  # an accepted share: the common answer, no json
        return b'{"id":%d,"result":true,"error":null}\n' % call_id
    return encode({"id": call_id, "result": result, "error": error})


class LineReader:
    """Splits a byte stream into lines of at most max_line bytes; an over-long line is dropped up to
    its end and reported once (as StratumProtocol.receive_data frames the client's side)."""

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False

    @property
    def partial(self) -> bool:
        return bool(self._buffer) or self._discarding

    def feed(self, data: bytes) -> tuple[list[bytes], int]:
        """(complete stripped non-empty lines, how many over-long lines were dropped)."""
        lines: list[bytes] = []
        dropped = 0
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if self._discarding:
                if newline < 0:
                    self._buffer.clear()
                    return lines, dropped
                del self._buffer[: newline + 1]
                self._discarding = False
                continue
            if newline < 0:
                if len(self._buffer) > self.max_line:
                    self._buffer.clear()
                    self._discarding = True
                    dropped += 1
                return lines, dropped
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if len(line) > self.max_line:
                dropped += 1
                continue
            line = line.strip()
            if line:
                lines.append(line)
