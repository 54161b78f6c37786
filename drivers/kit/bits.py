"""Bit and byte shuffles more than one driver needs."""

from __future__ import annotations

from array import array

_WORD = "I" if array("I").itemsize == 4 else "L"  # a 4-byte machine word (unsigned int is, on every platform we run on)


def rev8(byte: int) -> int:
    """The byte with its bit order reversed (BM13xx ticket masks, Avalon4 voltage words)."""
    return int(f"{byte:08b}"[::-1], 2)


def bswap32(value: int) -> int:
    """A 32-bit value with its byte order reversed: how the chips' big-endian nonce counters map to
    the header's little-endian nonce field (docs/icarus.md §0, docs/bm13xx.md §5.1, docs/avalon.md §B6.5)."""
    return int.from_bytes(value.to_bytes(4, "big"), "little")


def reverse_words(data: bytes) -> bytes:
    """Reverse the order of the 4-byte words, bytes inside each word unchanged: how BM13xx and
    Icarus packets carry a midstate, H7 first (docs/bm13xx.md §4.2, docs/icarus.md §A2)."""
    if len(data) % 4:
        raise ValueError(f"reverse_words: length {len(data)} is not a multiple of 4")
    # In C, not a join over slices: it runs for every work unit an Icarus or BM13xx driver sends
    # (benchmarks/bench_host_cost.py). The words are reversed as machine words, their bytes untouched.
    words = array(_WORD)
    words.frombytes(data)  # any bytes-like (array(_WORD, memoryview) would take its bytes as numbers)
    words.reverse()
    return words.tobytes()
