"""The asyncio shell around one Stratum V2 pool's `Sv2Session` (docs/sv2.md §5).

Every timer, the backoff, the supervision and the stop rule are the Stratum V1 shell's
(sources/stratum/connection.py), which only moves bytes between a socket and a sans-I/O session:
this class hands it an `Sv2Session` instead. The Noise handshake and encryption live in the
session, so the socket is plain TCP (no TLS: Noise is the transport security, §4).
"""

from __future__ import annotations

import logging
import time

from miner.sources.stratum.connection import PoolConnection, protocol_log
from miner.sources.stratum.session import SessionEvent
from miner.sources.stratum.url import PoolConfig, Timeouts
from miner.sources.sv2.session import Sv2Session

log = logging.getLogger(__name__)


# A stop waits this long for answers to submits in flight, not the V1 shell's 2 s: SRI's pool answers in
# batches of `share_batch_size`, so the last few shares of a session may never be answered at all.
STOP_ANSWER_WAIT = 0.5


class Sv2Connection(PoolConnection):
    protocol = "stratum2"

    async def stop(self, answer_wait: float = STOP_ANSWER_WAIT) -> None:
        await super().stop(answer_wait)

    def _idle(self) -> None:
        """Every DEADLINE_CHECK s without data: the session's timers (an unanswered RequestExtensions)
        and the local devices, so a hot-plugged device gets its standard channel (docs/sv2.md §8)."""
        now = time.monotonic()
        self._act(self.session.set_devices(self.local_devices(), now))
        self._act(self.session.tick(now))
        self._flush()

    def _act(self, events: list[SessionEvent]) -> None:
        # the devices are read before every input, so channels follow them while data flows too
        self.session.set_devices(self.local_devices(), time.monotonic())
        super()._act(events)

    def make_session(self, config: PoolConfig, name: str, timeouts: Timeouts | None,  # type: ignore[override]
                     user_agent: str) -> Sv2Session:
        return Sv2Session(config, name, timeouts, user_agent)

    def _log_lines(self, direction: str, data: bytes) -> None:
        """The bytes are ciphertext: the session logs each message it sends and takes instead."""
        if protocol_log.isEnabledFor(logging.DEBUG):
            protocol_log.debug("%s %s %d encrypted bytes", self.name, direction, len(data))
