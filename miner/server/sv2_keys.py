"""`miner serve`'s Stratum V2 identity: the authority key pair, the server's static Noise key and
the certificate the authority signs for it (docs/serve.md §10.1; sv2-spec 04-Protocol-Security.md
§4.5.3, §4.7).

Key files are SRI's text form, so an operator can bring the keys of an SRI pool's config
(stratum-mining/stratum, roles/pool config `authority_public_key` / `authority_secret_key`):
a secret key is base58check of its 32 bytes, a public key base58check of the version [1, 0] and
the 32-byte x-only key (utils/key-utils/src/lib.rs, `Secp256k1SecretKey` / `Secp256k1PublicKey`
Display). A missing key file is generated once (0600) and never overwritten; a file that cannot be
read is one error line, not a new key.

The certificate is issued for `validity` seconds (SRI's `cert_validity_sec`, 3600 in its example
configs) and re-issued for new handshakes once a quarter of it is left, so a connection never
gets a certificate about to expire; an open connection keeps the one it was given (the spec
checks the certificate at the handshake only).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from miner.sources.sv2 import secp
from miner.sources.sv2.noise import Certificate, b58check_decode, b58check_encode, encode_authority_key

AUTHORITY_FILE = "sv2-authority.toml"
STATIC_FILE = "sv2-static.toml"
DEFAULT_VALIDITY = 3600  # seconds (SRI's cert_validity_sec in its pool example configs)
RENEW_FRACTION = 0.25  # re-issue once this share of the validity is left
BACKDATE = 60  # seconds valid_from lies before now: a downstream clock a minute behind still accepts


class KeyFileError(ValueError):
    """A key file that cannot be used, with the line to show."""


def state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("miner"))


def encode_secret(secret: bytes) -> str:
    return b58check_encode(secret)


def decode_secret(text: str) -> bytes:
    secret = b58check_decode(text.strip())
    if len(secret) != 32 or not secp.valid_secret(secret):
        raise ValueError("not a 32-byte secp256k1 secret key")
    return secret


def read_secret(path: Path, key: str) -> bytes:
    """The secret `key` (SRI's name) from a TOML key file, or KeyFileError with one line."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"cannot read the Stratum V2 key file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KeyFileError(f"{path} is not a TOML key file ({exc}); give a file with {key} = \"...\"") from None
    value = data.get(key)
    if not isinstance(value, str):
        raise KeyFileError(f"{path} has no {key} = \"...\" line (SRI's pool config names it so)")
    try:
        secret = decode_secret(value)
    except ValueError as exc:
        raise KeyFileError(f"{path}: {key} is not a base58check secret key ({exc}); copy it again") from None
    public = data.get(key.replace("secret", "public"))
    if isinstance(public, str) and key == "authority_secret_key" \
            and public.strip() != encode_authority_key(secp.xonly_public(secret)):
        raise KeyFileError(f"{path}: authority_public_key is not the public key of authority_secret_key")
    return secret


def write_new_secret(path: Path, key: str, comment: str) -> bytes:
    """Create `path` with a fresh secret; never overwrites (O_EXCL), 0600 from the start."""
    secret = secp.new_secret()
    lines = [f"# {comment}", f'{key} = "{encode_secret(secret)}"']
    if key == "authority_secret_key":
        lines.append(f'authority_public_key = "{encode_authority_key(secp.xonly_public(secret))}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return secret


def load_or_create(path: Path, key: str, comment: str) -> tuple[bytes, bool]:
    """(the secret, whether it was created now)."""
    if path.exists():
        return read_secret(path, key), False
    try:
        return write_new_secret(path, key, comment), True
    except FileExistsError:  # another process made it between the check and the open: use theirs
        return read_secret(path, key), False
    except OSError as exc:
        raise KeyFileError(f"cannot create the Stratum V2 key file {path}: {exc.strerror or exc} "
                           "(give one with --sv2-authority-key)") from None


@dataclass(frozen=True)
class Sv2Identity:
    authority_secret: bytes
    static_secret: bytes
    authority_path: Path | None = None
    created: bool = False

    @property
    def authority_key(self) -> bytes:
        return secp.xonly_public(self.authority_secret)

    @property
    def authority_text(self) -> str:
        """§4.7: what goes after the '/' of the downstream's URL."""
        return encode_authority_key(self.authority_key)

    def url(self, host: str, port: int) -> str:
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
        return f"stratum2+tcp://{shown}:{port}/{self.authority_text}"


def load_identity(authority_file: Path | None = None, directory: Path | None = None) -> Sv2Identity:
    """The authority key (the given file, else the state dir's, made on first use) and the static key."""
    folder = directory or state_dir()
    if authority_file is not None:
        authority, created = read_secret(authority_file, "authority_secret_key"), False
        path = authority_file
    else:
        path = folder / AUTHORITY_FILE
        authority, created = load_or_create(path, "authority_secret_key",
                                            "miner serve's Stratum V2 authority key: keep it secret; downstream "
                                            "miners trust the public key")
    static, _ = load_or_create(folder / STATIC_FILE, "static_secret_key",
                               "miner serve's Stratum V2 static Noise key (its certificate is signed by the authority)")
    return Sv2Identity(authority, static, path, created)


class CertificateIssuer:
    """Issues the server's certificate and renews it before it runs out (module docstring)."""

    def __init__(self, identity: Sv2Identity, validity: int = DEFAULT_VALIDITY,
                 wall_clock: Callable[[], float] | None = None):
        import time

        self.identity = identity
        self.validity = validity
        self.wall_clock = wall_clock or time.time
        self.static_key_x = secp.xonly_public(identity.static_secret)
        self.certificate: Certificate | None = None
        self.issued = 0

    def current(self) -> Certificate:
        now = int(self.wall_clock())
        cert = self.certificate
        if cert is None or cert.not_valid_after - now < self.validity * RENEW_FRACTION or now < cert.valid_from:
            cert = self.certificate = Certificate.issue(self.identity.authority_secret, self.static_key_x,
                                                        now - BACKDATE, now + self.validity)
            self.issued += 1
        return cert
