"""What the two legacy framings (BM1387, BM1384; docs/bm13xx.md §2.4) share: fixed-size replies
with no preamble to resynchronise on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from miner.drivers.bm13xx.messages import BadFrame, Reply


class LegacyReplyParser:
    """Fixed-size replies with no preamble. A frame that fails while the frames after it (up to
    LOOKAHEAD, waiting for them to arrive) decode in step is a "crc" error, skipped whole; when none
    of them does, the stream is out of step and the parser slides a byte at a time ("garbage") until
    a frame decodes and so does the one after it (or nothing follows yet). Garbage that happens to
    pass a CRC (1 in 32 on BM1387) still reads as a reply, and BM1384 nonces have no CRC at all:
    the driver's check of every nonce against its work is what keeps a misread out of the shares."""

    LOOKAHEAD = 3

    def __init__(self, size: int, decode: Callable[[bytes], Reply]):
        self.frame_size = size
        self._decode = decode
        self._buf = bytearray()
        self._in_step = True

    def feed(self, data: bytes) -> Iterator[Reply | BadFrame]:
        self._buf += data
        size = self.frame_size
        while len(self._buf) >= size:
            frame = bytes(self._buf[:size])
            try:
                reply = self._decode(frame)
            except ValueError:
                if self._in_step:
                    verdict = self._later_frames_decode(1, self.LOOKAHEAD)
                    if verdict is None:
                        return  # wait for the frames that tell a bad CRC from a slip
                    if verdict:
                        yield BadFrame(frame, "crc")
                        del self._buf[:size]
                        continue
                    self._in_step = False
                yield BadFrame(frame[:1], "garbage")
                del self._buf[:1]
                continue
            if not self._in_step:
                # Out of step: take a frame only when the one after it decodes too, or none follows yet.
                verdict = self._later_frames_decode(1, 1)
                if verdict is None and len(self._buf) > size:
                    return
                if verdict is False:
                    yield BadFrame(frame[:1], "garbage")
                    del self._buf[:1]
                    continue
            self._in_step = True
            del self._buf[:size]
            yield reply

    def _later_frames_decode(self, first: int, count: int) -> bool | None:
        """Whether one of frames first..first+count-1 after the buffer's start decodes in step (None:
        not all of them are here yet and none of those here decodes)."""
        size = self.frame_size
        for k in range(first, first + count):
            frame = bytes(self._buf[k * size : (k + 1) * size])
            if len(frame) < size:
                return None
            try:
                self._decode(frame)
            except ValueError:
                continue
            return True
        return False

    def clear(self) -> None:
        self._buf.clear()
        self._in_step = True
