"""Where a pool is and how to talk to it: its URL, the settings the user gave for it, and the rule
for which hosts a pool may send us to (client.reconnect)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote, urlsplit

from publicsuffixlist import PublicSuffixList

TLS_SCHEMES = {"stratum+ssl", "stratum+tls", "stratum+tcps", "ssl", "tls"}
TCP_SCHEMES = {"stratum+tcp", "stratum", "tcp"}
SV2_SCHEMES = {"stratum2+tcp"}  # Stratum V2 over Noise: stratum2+tcp://HOST:PORT/AUTHORITY_KEY (docs/sv2.md §1)


@dataclass(frozen=True)
class PoolUrl:
    host: str
    port: int
    tls: bool
    xnsub: bool
    user: str | None = None  # stratum+tcp://user:pass@host:port, as cpuminer users write it
    password: str | None = None
    authority_key: bytes | None = None  # Stratum V2 only: the pool's 32-byte x-only authority key

    @property
    def protocol(self) -> str:
        """"stratum1" or "stratum2", as the API, REST and /metrics show it per pool."""
        return "stratum2" if self.authority_key is not None else "stratum1"

    def __str__(self) -> str:
        if self.authority_key is not None:
            from miner.sources.sv2.noise import encode_authority_key

            return f"stratum2+tcp://{self.host}:{self.port}/{encode_authority_key(self.authority_key)}"
        scheme = "stratum+ssl" if self.tls else "stratum+tcp"
        return f"{scheme}://{self.host}:{self.port}"


def parse_pool_url(url: str) -> PoolUrl:
    """stratum+tcp://[user[:pass]@]host:port, stratum+ssl|tls|tcps://..., or host:port; '#xnsub' may follow;
    stratum2+tcp://[user[:pass]@]host:port/AUTHORITY_KEY for Stratum V2."""
    text = url.strip()
    xnsub = False
    if "#" in text:
        text, fragment = text.split("#", 1)
        xnsub = "xnsub" in fragment.split(",")
    if "://" not in text:
        text = "stratum+tcp://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in TLS_SCHEMES | TCP_SCHEMES | SV2_SCHEMES:
        raise ValueError(f"pool url {url!r}: unknown scheme {scheme!r} (use stratum+tcp://, stratum+ssl:// "
                         "or stratum2+tcp://)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"pool url {url!r}: bad port") from None
    if not parts.hostname or port is None:
        raise ValueError(f"pool url {url!r}: needs a host and a port, like stratum+tcp://pool.example:3333")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme in SV2_SCHEMES:
        return PoolUrl(parts.hostname, port, False, False, user, password, _authority_key(url, parts.path))
    return PoolUrl(parts.hostname, port, scheme in TLS_SCHEMES, xnsub, user, password)


def _authority_key(url: str, path: str) -> bytes:
    """sv2-spec 04-Protocol-Security.md §4.7: the pool's authority key is the URL's path."""
    from miner.sources.sv2.noise import decode_authority_key

    text = path.strip("/")
    if not text:
        raise ValueError(f"pool url {url!r}: a stratum2+tcp:// URL ends with the pool's authority key, like "
                         "stratum2+tcp://pool.example:34254/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
    try:
        return decode_authority_key(text)
    except ValueError as exc:
        raise ValueError(f"pool url {url!r}: the authority key {text!r} is not valid: {exc}; copy it again "
                         "from the pool's website") from None


@cache
def _suffix_list() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package: no network fetch


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def registered_domain(host: str) -> str | None:
    """The name a registrant owns (example.co.uk for pool.example.co.uk), by the public suffix list;
    None for a public suffix itself (co.uk, github.io) or a single label."""
    name = host.lower().rstrip(".")
    return _suffix_list().privatesuffix(name) if "." in name else None


def same_domain(a: str, b: str) -> bool:
    """Whether client.reconnect may send us from host b to host a: an IP literal (v4 or v6) only to
    itself; a name only within the same registered domain by the public suffix list (so
    pool.example.co.uk may not send us to evil.co.uk, nor 10.0.0.1 to 192.168.0.1)."""
    a_norm, b_norm = a.lower().rstrip("."), b.lower().rstrip(".")
    address_a, address_b = _address(a_norm), _address(b_norm)
    if address_a is not None or address_b is not None:
        return address_a == address_b
    if a_norm == b_norm:
        return True
    domain = registered_domain(a_norm)
    return domain is not None and domain == registered_domain(b_norm)


@dataclass
class PoolConfig:
    url: str
    user: str
    password: str = "x"
    suggest_difficulty: float | None = None
    xnsub: bool = False
    version_rolling: bool = True
    tls_verify: bool = True
    ca_file: str | None = None
    allow_redirect_anywhere: bool = False  # client.reconnect to another domain (off: same domain only)
    # cgminer --expiry: a share found on a job older than this many seconds is stale, not sent
    # (cgminer.c stale_work, opt_expiry); None: only the pool's clean jobs end a job.
    expiry: float | None = None
    quota: int = 1  # cgminer --quota N;URL: this pool's share of the work under --load-balance

    def __post_init__(self) -> None:
        # Credentials in the URL stand in for a user/password not given otherwise.
        try:
            url = parse_pool_url(self.url)
        except ValueError:
            return  # reported where the URL is used
        if url.user and not self.user:
            self.user = url.user
        if url.password is not None and self.password == "x":
            self.password = url.password


@dataclass
class Timeouts:
    connect: float = 10.0
    reply: float = 10.0  # to subscribe/authorize
    silence: float = 120.0  # nothing at all from the pool this long: dead
    work: float = 300.0  # no new job this long: the pool stopped sending work
    line: float = 5.0  # a line begun must end within this long (a pool trickling bytes is stalled)
    answer: float = 5.0  # a submit out and the pool silent this long: frozen
    unanswered: int = 3  # this many submits unanswered for `answer` s while jobs come: ignoring submits
    backoff_base: float = 1.0
    # A dead pool is probed at least this often, so a higher-priority pool that comes back is
    # mined on again within about this long (plus the failover's switch delay).
    backoff_cap: float = 10.0
