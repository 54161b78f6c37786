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


def engine(text: str) -> str:
    try:
        return hashing.check_engine(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
