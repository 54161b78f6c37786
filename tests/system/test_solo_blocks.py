"""`miner solo --blocks N` against the bcoin regtest node: a `generate` through real mining, paying
an address in bcoin's own regtest form (tests/vectors/bcoin_regtest_addresses.json)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import load_vectors

ROOT = Path(__file__).resolve().parents[2]


def test_blocks_n_exits_after_n_accepted_blocks_and_prints_their_hashes(regtest_node, tmp_path):
    node = regtest_node
    vector = load_vectors("bcoin_regtest_addresses.json")["vectors"][2]  # rb1q... (p2wpkh)
    start = node.rpc("getblockcount")
    proc = subprocess.run([sys.executable, "-m", "miner", "solo", "--rpc-url", node.url, "--rpc-pass", node.api_key,
                           "--address", vector["address"], "-t", "1", "--blocks", "3", "--time-limit", "60",
                           "--no-tui"], capture_output=True, text=True, timeout=90, cwd=ROOT,
                          env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    hashes = proc.stdout.split()
    assert len(hashes) >= 3
    end = node.rpc("getblockcount")
    assert end - start == len(hashes)  # every block printed is one the node took, and no other
    on_chain = [node.rpc("getblockhash", h) for h in range(start + 1, end + 1)]
    assert on_chain == hashes
    for height in range(start + 1, end + 1):
        coinbase = node.block_at(height)["tx"][0]
        assert coinbase["vout"][0]["scriptPubKey"]["hex"] == vector["script"]

