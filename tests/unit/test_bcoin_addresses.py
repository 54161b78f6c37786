"""`miner solo` takes the address forms bcoin itself hands out on regtest (tests/vectors/
bcoin_regtest_addresses.json, made by bcoin 1.0.2), checked against the node's network."""

import pytest

from miner.sources.node.address import AddressError, decode_address
from tests.conftest import load_vectors


@pytest.mark.parametrize("vector", load_vectors("bcoin_regtest_addresses.json")["vectors"], ids=lambda v: v["kind"])
def test_bcoin_regtest_forms_give_bcoins_own_output_scripts(vector):
    address = decode_address(vector["address"])
    assert address.kind == vector["kind"]
    assert address.script.hex() == vector["script"]
    address.check_chain("regtest")
    for chain in ("main", "test", "signet"):
        with pytest.raises(AddressError, match="is a regtest address"):
            address.check_chain(chain)


def test_a_typo_in_a_bcoin_form_is_a_checksum_error():
    good = load_vectors("bcoin_regtest_addresses.json")["vectors"][2]["address"]
    with pytest.raises(AddressError, match="checksum"):
        decode_address(good[:-1] + ("q" if good[-1] != "q" else "p"))
