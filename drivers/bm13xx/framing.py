"""The Framing interface: one object per framing family turns messages (messages.py) and jobs into
that family's bytes and back, and parses a byte stream in either direction. The driver and the
emulator get theirs from ChipInfo.framing, so both sides of a link always use the same codec.

Families (docs/bm13xx.md §2): the 55 AA framing of BM1397/BM1366/BM1368/BM1370 (framing_55aa.py),
and the legacy, preamble-less framings of BM1387 (framing_bm1387.py) and BM1384 (framing_bm1384.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Protocol

from miner.drivers.bm13xx.jobs import MidstateJob
from miner.drivers.bm13xx.messages import BadFrame, Command, Reply


class ReplyStream(Protocol):
    """Chip → host bytes in, replies (and what had to be thrown away) out."""

    frame_size: int

    def feed(self, data: bytes) -> Iterator[Reply | BadFrame]: ...

    def clear(self) -> None: ...


class CommandStream(Protocol):
    """Host → chip bytes in, commands and jobs out (the emulator's side of the link)."""

    def feed(self, data: bytes) -> Iterator[Any]: ...


class Framing(ABC):
    name: ClassVar[str]
    legacy: ClassVar[bool]  # no preamble either way (§2.4)
    ticket_in_job: ClassVar[bool] = False  # the ticket mask rides in each job, not in register 0x14

    @abstractmethod
    def encode_command(self, command: Command) -> bytes: ...

    @abstractmethod
    def decode_command(self, frame: bytes) -> Command: ...

    @abstractmethod
    def encode_midstate_job(self, job: MidstateJob, ticket: int = 1, hcn: int = 0) -> bytes:
        """A midstate job in this family's job frame. `ticket` (the ticket difficulty) and `hcn`
        (hash-counting number) are used only where the job carries them (BM1384)."""

    @abstractmethod
    def encode_reply(self, reply: Reply, long: bool = False) -> bytes:
        """`long`: the 55 AA form with version bits (BM1366+ once version rolling is on)."""

    @abstractmethod
    def reply_parser(self, long: bool = False) -> ReplyStream: ...

    @abstractmethod
    def command_parser(self, header_jobs: bool = False) -> CommandStream:
        """`header_jobs`: the chip takes BM1366+ full-header jobs (only the 55 AA family has them)."""

    def __repr__(self) -> str:
        return f"<{self.name} framing>"
