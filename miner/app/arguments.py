"""Argument types shared by every `miner` command line: each one rejects a bad value with one line."""

from __future__ import annotations

import argparse

from miner.core import hashing


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def port(text: str) -> int:
    """A TCP port, 1..65535 (a bigger one is an OverflowError deep in asyncio otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {text}")
    return value


def engine(text: str) -> str:
    try:
        return hashing.check_engine(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def percent(text: str) -> float:
    value = float(text.rstrip("%"))
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage in (0, 100], got {text}")
    return value


RATE_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def hash_rate(text: str) -> float:
    """A hash rate in H/s: 500, 1.2G, 10T, 500GH/s."""
    body = text.strip().lower().removesuffix("/s").removesuffix("h")
    suffix = body[-1:] if body[-1:] in RATE_SUFFIXES else ""
    try:
        value = float(body[: len(body) - len(suffix)]) * RATE_SUFFIXES[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hash rate: {text} (e.g. 500G or 1.2T)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value
