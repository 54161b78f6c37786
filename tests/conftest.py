import json
from pathlib import Path

import pytest

from miner import hashing

ROOT = Path(__file__).resolve().parent.parent
# The shared vectors live beside the project in the workplace; a copy is kept in tests/vectors so
# the suite runs on a clean clone.
VECTORS = ROOT / "tests" / "vectors"


def load_vectors(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(params=hashing.engines())
def engine(request) -> str:
    """Every engine this CPU can run."""
    return request.param
