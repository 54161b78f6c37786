"""Property tests for the API's request parser, reply framing and the --api-allow parser."""

import ipaddress
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from miner.core.dispatch import Dispatcher
from miner.core.engine import Miner
from miner.devices.cpu import CpuDevice
from miner.devices.work_source import DispatcherWorkSource
from miner.frontends.cgminer import ApiError, group_for, handle_request, parse_allow, parse_request, split_params
from miner.frontends.view import MinerView
from miner.sources.sandbox import SandboxSource

names = st.text(st.characters(codec="ascii", exclude_characters="|+{\x00"), min_size=1, max_size=20).map(
    str.strip).filter(bool)
params = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)


@given(names, params)
def test_text_requests_split_at_the_first_bar(command, parameter):
    request = parse_request(f"{command}|{parameter}".encode())
    assert request.command == command.lower() and not request.is_json
    assert request.parameter == parameter.rstrip(" \t\r\n")


@given(names, params)
def test_json_requests_carry_command_and_parameter(command, parameter):
    request = parse_request(json.dumps({"command": command, "parameter": parameter}).encode())
    assert (request.command, request.parameter, request.is_json) == (command.lower(), parameter, True)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_fail_with_an_api_error(data):
    try:
        parse_request(data)
    except ApiError as exc:
        assert exc.code in (23, 24)


@given(st.lists(st.text(st.characters(codec="ascii"), max_size=10), min_size=1, max_size=5))
def test_escaped_commas_survive_splitting(parts):
    escaped = ",".join(p.replace("\\", "\\\\").replace(",", "\\,") for p in parts)
    assert split_params(escaped) == parts


@pytest.fixture(scope="module")
def idle_view():
    """A view of a miner that is not running: enough for every read-only command."""
    dispatcher = Dispatcher()
    source = SandboxSource(0.01)
    dispatcher.set_job(source.job)
    miner = Miner(source, [CpuDevice(DispatcherWorkSource(dispatcher), lambda n: None, threads=1)], dispatcher)
    return MinerView(miner)


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(st.binary(max_size=200), names.map(str.encode),
                      st.builds(lambda c, p: json.dumps({"command": c, "parameter": p}).encode(), names, params)))
@example(data=b"\x01\x00+")  # a NUL inside the request once came back inside the reply
@example(data=b'{"command": "x\\u0000y"}')
def test_every_request_gets_exactly_one_nul_terminated_reply(idle_view, data):
    reply = handle_request(data, idle_view, "R")
    assert reply.endswith(b"\x00") and reply.count(b"\x00") == 1
    body = reply[:-1].decode()
    if body.startswith("{"):
        decoded = json.loads(body)
        assert decoded["id"] == 1
    elif body.startswith("CMD="):  # a text join: each command's reply after CMD=name| (api.c head_join)
        assert b"+" in data and "|STATUS=" in body
    else:
        assert body.startswith("STATUS=")


octet_ip = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@given(octet_ip, st.integers(0, 32), octet_ip, st.sampled_from(["W", "R", ""]))
def test_allow_entries_match_exactly_their_network(base, prefix, probe, group):
    network = ipaddress.IPv4Network(f"{base}/{prefix}", strict=False)
    entries = parse_allow(f"{group + ':' if group else ''}{base}/{prefix}")
    expected = (group or "R") if probe in network else None
    assert group_for(str(probe), entries) == expected


@given(st.lists(st.integers(0, 255), min_size=1, max_size=4), octet_ip)
def test_missing_octets_are_zero_and_no_prefix_is_one_address(octets, probe):
    text = ".".join(map(str, octets))
    padded = ipaddress.IPv4Address(".".join(map(str, octets + [0] * (4 - len(octets)))))
    assert group_for(str(padded), parse_allow(text)) == "R"
    assert group_for(str(probe), parse_allow(text)) == ("R" if probe == padded else None)


@given(st.lists(st.tuples(st.sampled_from("WR"), octet_ip), min_size=1, max_size=4), octet_ip)
def test_the_first_matching_entry_decides(entries, probe):
    text = ",".join(f"{g}:{ip}" for g, ip in entries)
    expected = next((g for g, ip in entries if ip == probe), None)
    assert group_for(str(probe), parse_allow(text)) == expected


@pytest.mark.parametrize("bad", ["W:300.1.1.1", "X:127.0.0.1", "127.0.0.1/40", "hello", "1.2.3.4.5"])
def test_bad_allow_entries_are_one_clear_error(bad):
    with pytest.raises(ValueError, match="--api-allow"):
        parse_allow(bad)


def test_default_access_is_read_only_from_this_machine():
    from miner.app.cli import mining_parser
    from miner.app.compose import api_host_and_allow
    from miner.app.settings import MINE, merge

    def settings(argv):
        return merge(MINE, vars(mining_parser().parse_args(argv)), None)

    host, entries = api_host_and_allow(settings(["--api-listen"]))
    assert host == "127.0.0.1" and group_for("127.0.0.1", entries) == "R" and group_for("10.0.0.1", entries) is None
    host, entries = api_host_and_allow(settings(["--api-allow", "W:127.0.0.1,R:10.0.0.0/8"]))
    assert host == "0.0.0.0" and group_for("127.0.0.1", entries) == "W" and group_for("10.1.2.3", entries) == "R"
