"""The share path: every nonce a device reports is rebuilt into its header and hashed by the C core
before anything is sent. Hashes above the device's own target are hardware errors."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from miner.core import hashing
from miner.core.targets import DIFF1_TARGET, hash_difficulty, hash_to_int
from miner.core.work import Nonce, Work


class Verdict(enum.Enum):
    HW_ERROR = "hw-error"  # the device claimed a nonce that does not meet its own target
    WORK = "work"  # valid for the device, but under the pool's difficulty: nothing to send
    SHARE = "share"  # meets the share target: submit
    BLOCK = "block"  # meets the network target too


@dataclass(frozen=True, slots=True)
class CheckedNonce:
    work: Work
    nonce: Nonce
    header: bytes
    digest: bytes
    verdict: Verdict

    @property
    def difficulty(self) -> float:
        return hash_difficulty(self.digest)

    @property
    def version(self) -> int:
        return self.work.version if self.nonce.version is None else self.nonce.version

    @property
    def job_version(self) -> int:
        return self.work.job.version

    @property
    def ntime(self) -> int:
        return self.work.ntime if self.nonce.ntime is None else self.nonce.ntime


def check_nonce(work: Work, nonce: Nonce, device_target: int = DIFF1_TARGET) -> CheckedNonce:
    """Hash the header the device claims to have found and classify it.

    device_target is the target the device reports at (difficulty 1 for most ASICs, the share
    target for the CPU). A rolled version outside the job's mask counts as a hardware error.
    """
    job = work.job
    version = work.version if nonce.version is None else nonce.version
    # A value wider than its 32-bit header field (a driver's bug, a corrupted frame) is a hardware
    # error: hashed with the bits a header can hold, counted, never packed whole nor sent.
    wide = not (0 <= nonce.nonce <= 0xFFFFFFFF and 0 <= version <= 0xFFFFFFFF
                and (nonce.ntime is None or 0 <= nonce.ntime <= 0xFFFFFFFF))
    if wide:
        header = work.header_for(nonce.nonce & 0xFFFFFFFF, version & 0xFFFFFFFF,
                                 None if nonce.ntime is None else nonce.ntime & 0xFFFFFFFF)
    else:
        header = work.header_for(nonce.nonce, nonce.version, nonce.ntime)
    digest = hashing.sha256d(header)
    value = hash_to_int(digest)
    if wide or (version ^ job.version) & ~job.version_mask & 0xFFFFFFFF or value > device_target:
        verdict = Verdict.HW_ERROR
    elif value > job.share_target:
        verdict = Verdict.WORK
    elif value <= job.network_target:
        verdict = Verdict.BLOCK
    else:
        verdict = Verdict.SHARE
    return CheckedNonce(work, nonce, header, digest, verdict)


def check_reported(nonce: Nonce, lookup: Callable[[int], Work | None],
                   target_for: Callable[[Work], int]) -> CheckedNonce | None:
    """Check a nonce as a device reported it: hashed once for the unit it names and, only when
    that misses the device target, once more for each of its `alternatives` in turn (a late
    reply, a job-id collision) until one fits. A nonce that fits none is a hardware error of the
    first known unit; None when no unit it names is known (any more).
    """
    first: CheckedNonce | None = None
    for candidate in (nonce, *nonce.alternatives):
        work = lookup(candidate.work_id)
        if work is None:
            continue
        share = check_nonce(work, candidate, device_target=target_for(work))
        if share.verdict is not Verdict.HW_ERROR:
            return share
        first = first or share
    return first
