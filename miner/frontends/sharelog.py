"""`--sharelog FILE`: one line per answered share, in cgminer's format (docs/alerts.md §5).

cgminer.c sharelog(): `timestamp,disposition,target,pool,dev,thr,sharehash,sharedata`, where
timestamp is the unix second the share was found; disposition is "accept", or "reject" followed by
":REASON" (at most 28 characters) when the pool gave one (share_result); target and sharehash are
bin2hex of the 32-byte little-endian target and hash; pool is the pool's URL; dev the device's name;
thr the thread (here the chip, 0 when the device does not say); sharedata bin2hex of cgminer's
128-byte work->data: the header with every 32-bit word byte-swapped (the getwork form), then the
SHA-256 padding words 0x80000000 ... 0x00000280, swapped alike.

The file is opened for appending (never truncated) and each line is flushed as it is written.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TextIO

from miner.core.shares import CheckedNonce
from miner.core.work import swap_words

log = logging.getLogger(__name__)

# The SHA-256 padding of an 80-byte message as cgminer's work->data carries it (word-swapped).
WORK_PADDING = swap_words(b"\x80" + bytes(43) + (640).to_bytes(4, "big"))
REASON_MAX = 28  # cgminer: reasonLen > 28 is cut


def sharelog_line(share: CheckedNonce, accepted: bool, reason: str | None, pool_url: str, found: float) -> str:
    disposition = "accept" if accepted else "reject" + (f":{reason[:REASON_MAX]}" if reason else "")
    # the pool's words must not break the line: no field separators, no control characters
    disposition = "".join(c if c.isprintable() else " " for c in disposition).replace(",", ";")
    target = share.work.target.to_bytes(32, "little").hex()
    data = (swap_words(share.header) + WORK_PADDING).hex()
    thread = share.nonce.chip if share.nonce.chip is not None else 0
    return (f"{int(found)},{disposition},{target},{pool_url},{share.nonce.device or 'dev'},{thread},"
            f"{share.digest.hex()},{data}\n")


class ShareLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file: TextIO | None = None
        self.lines = 0
        self._failed = False

    def open(self) -> None:
        """OSError with its reason when the file cannot be appended to."""
        if self.path.is_dir():
            raise OSError(f"--sharelog {self.path}: is a directory")
        self._file = self.path.open("a", encoding="ascii", buffering=1)

    def write(self, share: CheckedNonce, accepted: bool, reason: str | None, pool_url: str) -> None:
        if self._file is None:
            return
        found = share.nonce.found_at
        now_wall, now_mono = time.time(), time.monotonic()
        when = now_wall - (now_mono - found) if 0 < found <= now_mono else now_wall
        try:
            self._file.write(sharelog_line(share, accepted, reason, pool_url, when))
            self.lines += 1
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log.warning("--sharelog %s: cannot write (%s); mining goes on", self.path, exc.strerror or exc)
            self._failed = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
