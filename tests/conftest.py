import json
from pathlib import Path

import pytest

from miner.core import hashing

ROOT = Path(__file__).resolve().parent.parent
# The shared vectors live beside the project in the workplace; a copy is kept in tests/vectors so
# the suite runs on a clean clone.
VECTORS = ROOT / "tests" / "vectors"


def load_vectors(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(autouse=True)
def private_user_dirs(tmp_path_factory, monkeypatch):
    """Every test (and every `miner` it starts) gets its own config and data folders: the suite never
    reads the user's miner.toml nor writes their stats.json."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("HOME", str(home))  # cgminer's $HOME/.cgminer/cgminer.conf is the user's too


@pytest.fixture(params=hashing.engines())
def engine(request) -> str:
    """Every engine this CPU can run."""
    return request.param


# ------------------------------------------------------------------------------------ regtest nodes
@pytest.fixture(scope="session")
def regtest_node():
    """One bcoin regtest node for the tests that only add blocks. Not installed is a failure, not a
    skip: .ci/run installs it."""
    from tests.helpers.bcoin_node import BcoinNode

    node = BcoinNode()
    try:
        node.start()
    except RuntimeError as exc:
        node.close()
        pytest.fail(str(exc), pytrace=False)
    yield node
    node.close()


@pytest.fixture
def make_node():
    """Nodes a test starts, stops and restarts itself (make_node(port=..., api_key=...))."""
    from tests.helpers.bcoin_node import BcoinNode

    nodes = []

    def make(**kwargs) -> BcoinNode:
        node = BcoinNode(**kwargs)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()
