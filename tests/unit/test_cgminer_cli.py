"""A cgminer user's command line and cgminer.conf (docs/cli.md), on the argument layer: each flag
becomes the setting docs/cli.md §1 says, a config file shaped as cgminer's write_config saves it
loads, and each bad value is refused with one line (issue 14 item 12)."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from miner.app import cgminer_flags as cf
from miner.app import compose
from miner.app import settings as st
from miner.app.cli import emulate_usage, main, mining_parser
from miner.devices.base import DeviceError, DeviceSpec
from miner.devices.bookkeeping import DeviceState
from miner.devices.manager import DeviceManager, load_drivers
from miner.sources.stratum.strategy import Strategy

A, B = "stratum+tcp://a.example:3333", "stratum+tcp://b.example:3333"


def resolve(*argv: str) -> st.Settings:
    return st.resolve(st.MINE, vars(mining_parser().parse_args(list(argv))))


def refused(capsys, *argv: str) -> str:
    """The one error line `miner ARGV` ends with (exit status 2)."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("usage: miner [options]")  # one short usage line
    return lines[1]


# ------------------------------------------------------------------ §1 the flags
def test_cgminer_short_flags_are_the_same_settings(tmp_path):
    conf = tmp_path / "x.toml"
    conf.write_text("[miner]\nthreads = 3\n")
    s = resolve("-c", str(conf), "-T", "-P", "-l", "7")
    assert s.devices.threads == 3 and s.operating.no_tui and s.operating.protocol_log
    assert s.run.status_interval == 7.0
    s = resolve("--text-only", "--protocol-dump", "--log", "2")
    assert s.operating.no_tui and s.operating.protocol_log and s.run.status_interval == 2.0


def test_quota_pools_keep_their_place_among_the_o_pools():
    s = resolve("-o", A, "-u", "w", "--quota", f"3;{B}", "--load-balance")
    configs = st.pool_configs(s)
    assert [(c.url, c.quota, c.user) for c in configs] == [(A, 1, "w"), (B, 3, "w")]
    picker = compose.make_picker(s, configs)
    assert picker.strategy is Strategy.LOAD_BALANCE and picker.quotas == [1, 3]
    assert not s.notes


def test_quotas_without_load_balance_say_they_do_nothing():
    s = resolve("-o", A, "-u", "w", "-U", f"2;{B}")
    assert compose.make_picker(s, st.pool_configs(s)) is None  # failover
    assert any("--quota: quotas only share the work with --load-balance" in n for n in s.notes)


@pytest.mark.parametrize("argv, strategy, rotate", [
    (["--balance"], Strategy.BALANCE, 0.0), (["--round-robin"], Strategy.ROUND_ROBIN, 0.0),
    (["--rotate", "10"], Strategy.ROTATE, 600.0), (["--load-balance", "--failover-only"], Strategy.LOAD_BALANCE, 0.0)])
def test_each_strategy_flag_picks_cgminers_strategy(argv, strategy, rotate):
    s = resolve("-o", A, "-u", "w", "-o", B, *argv)
    picker = compose.make_picker(s, st.pool_configs(s))
    assert picker.strategy is strategy and picker.rotate_seconds == rotate
    assert picker.failover_only == ("--failover-only" in argv)


def test_two_strategies_are_refused(capsys):
    assert "give one pool strategy" in refused(capsys, "-o", A, "-u", "w", "--balance", "--rotate", "5")


def test_expiry_reaches_every_pool_and_api_flags_their_settings():
    s = resolve("-o", A, "-u", "w", "-o", B, "--expiry", "30", "--api-network", "--api-description", "rig 7")
    manager = compose.make_source(s, compose.POOLS)
    assert [p.config.expiry for p in manager.pools] == [30.0, 30.0]
    assert s.operating.api_allow == "R:0/0" and s.cgminer.api_description == "rig 7"
    assert resolve("--api-network", "--api-allow", "W:127.0.0.1").operating.api_allow == "W:127.0.0.1"


def test_flags_that_change_nothing_say_so_when_mining_starts():
    s = resolve("--scan-time", "30", "--no-submit-stale", "--icarus-timing", "short", "--au3-volt", "775")
    text = "\n".join(s.notes)
    assert "--scan-time ignored" in text and "--no-submit-stale: nothing to change" in text
    assert "--icarus-timing ignored" in text and "--au3-volt ignored" in text


def test_per_driver_flags_set_the_devices_of_their_model():
    s = resolve("--gekko-compacf-freq", "200", "--au3-freq", "225", "--avalon7-freq", "500:500:500",
                "--set-device", "bm1387:ticket=64")
    defaults = cf.model_defaults(s.cgminer.driver_flags, s.cgminer.set_device)
    assert defaults.options_for("bm13xx", DeviceSpec.parse("bm1397:/dev/x")) == {"frequency": "200"}
    assert defaults.options_for("bm13xx", DeviceSpec("bm13xx", "/dev/x", {"model": "bm1397"})) == {"frequency": "200"}
    assert defaults.options_for("bm13xx", DeviceSpec.parse("bm1387:/dev/x")) == {"ticket": "64"}
    assert defaults.options_for("icarus", DeviceSpec.parse("u3:/dev/x")) == {"freq": "225"}
    assert defaults.options_for("icarus", DeviceSpec.parse("icarus:/dev/x")) == {}
    assert defaults.options_for("avalon", DeviceSpec.parse("avalon7:/dev/x")) == {"frequency": "500:500:500"}
    # the real drivers take them (and a device's own option wins)
    drivers = cf.with_defaults(load_drivers(), defaults)
    compacf = drivers["bm1397"].create(DeviceSpec.parse("bm1397:/dev/x"), None, lambda n: None, 0)
    own = drivers["bm1397"].create(DeviceSpec.parse("bm1397:/dev/x,frequency=300"), None, lambda n: None, 1)
    assert (compacf.target_frequency, own.target_frequency) == (200.0, 300.0)
    u3 = drivers["u3"].create(DeviceSpec.parse("u3:/dev/x"), None, lambda n: None, 0)
    assert u3._requested_mhz == 225.0


def test_newpac_and_r606_with_two_clocks_are_refused(capsys):
    line = refused(capsys, "--gekko-newpac-freq", "150", "--gekko-r606-freq", "550")
    assert "set the same bm1387 devices' frequency" in line


def test_bfgminer_scan_serial():
    s = resolve("-S", "icarus:/dev/ttyUSB3", "-S", "noauto")
    assert s.devices.specs == ("icarus:/dev/ttyUSB3",)
    manager = compose.make_device_manager(s, SimpleNamespace(), lambda n: None)
    assert manager.scan_usb is False
    assert compose.make_device_manager(resolve(), SimpleNamespace(), lambda n: None).scan_usb is True


def test_bare_scan_serial_port_asks_for_the_driver(capsys):
    assert "say which driver, e.g. -S icarus:/dev/ttyUSB0" in refused(capsys, "-S", "/dev/ttyUSB0")


def test_solo_the_cgminer_way():
    s = resolve("-o", "http://127.0.0.1:18443", "-u", "rpcuser", "-p", "rpcpass", "--btc-address", "bcrt1qxyz")
    assert compose.source_kind(s) == compose.NODE
    assert (s.node.rpc_url, s.node.rpc_user, s.node.rpc_password, s.node.address) == (
        "http://127.0.0.1:18443", "rpcuser", "rpcpass", "bcrt1qxyz")
    assert st.pool_configs(s) == []


def test_solo_without_an_address_says_what_is_missing(capsys):
    assert "solo mining on it needs --btc-address ADDR" in refused(capsys, "-o", "http://127.0.0.1:8332", "-u", "u")


def test_an_unknown_option_names_the_likely_one(capsys):
    line = refused(capsys, "--load-balanse")
    assert "--load-balanse: did you mean --load-balance?" in line
    assert "did you mean --api-port?" in refused(capsys, "--api-prot", "4028")


# ------------------------------------------------------------------ §2 cgminer.conf
SAVED = {  # the shape cgminer.c write_config writes (all values strings, flags true)
    "pools": [
        {"url": "stratum+tcp://main.example:3333", "user": "me.1", "pass": "x"},
        {"quota": "3;stratum+tcp://second.example:3333", "extranonce-subscribe": True, "user": "me.2", "pass": "y"},
    ],
    "load-balance": True,
    "api-listen": True, "api-port": "4028", "api-allow": "W:127.0.0.1", "api-description": "cgminer 4.12.0",
    "expiry": "120", "log": "5", "scan-time": "60", "hotplug": "5",
    "gekko-compacf-freq": "200", "gekko-r606-freq": "550", "icarus-timing": "short",
    "api-mcast-addr": "224.0.0.75", "gekko-tune-up": "97.0", "shares": "0",
}


def test_a_config_cgminer_saved_loads(tmp_path):
    path = tmp_path / "cgminer.conf"
    path.write_text(json.dumps(SAVED, indent=1))
    s = resolve("-c", str(path))
    configs = st.pool_configs(s)
    assert [(c.url, c.user, c.password, c.quota, c.xnsub) for c in configs] == [
        ("stratum+tcp://main.example:3333", "me.1", "x", 1, False),
        ("stratum+tcp://second.example:3333", "me.2", "y", 3, True)]
    assert s.cgminer.strategy == "load-balance" and s.cgminer.expiry == 120.0
    assert s.cgminer.api_description == "cgminer 4.12.0" and s.operating.api_listen
    assert set(s.cgminer.driver_flags) == {"--gekko-compacf-freq=200", "--gekko-r606-freq=550"}
    assert s.file.ignored == ["icarus-timing", "api-mcast-addr", "gekko-tune-up", "shares"]
    # the ignored keys are in the lines logged when mining starts
    assert any("ignored: icarus-timing, api-mcast-addr, gekko-tune-up, shares" in n for n in s.notes)
    picker = compose.make_picker(s, configs)
    assert picker.quotas == [1, 3]


def test_cgminers_own_place_is_read_when_no_file_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".cgminer").mkdir()
    (tmp_path / ".cgminer" / "cgminer.conf").write_text(json.dumps(SAVED))
    s = resolve()
    assert s.file is not None and s.file.path == tmp_path / ".cgminer" / "cgminer.conf"
    assert len(st.pool_configs(s)) == 2


def test_a_bad_quota_in_the_file_names_the_key(tmp_path, capsys):
    path = tmp_path / "cgminer.conf"
    path.write_text(json.dumps({"pools": [{"quota": "x3;stratum+tcp://h:1", "user": "u"}]}))
    assert "key 'pools[0].quota'" in refused(capsys, "-c", str(path))


# ------------------------------------------------------------------ §5 bad input, one line each
@pytest.mark.parametrize("argv, says", [
    (["--api-port", "70000"], "a port is 1-65535, got 70000"), (["--api-port", "0"], "a port is 1-65535"),
    (["--hotplug", "-1"], "argument --hotplug: must be >= 0, got -1"),
    (["--failover-switch-delay", "-3"], "argument --failover-switch-delay: must be >= 0, got -3"),
    (["-o", A, "-u", "w", "--tls-ca", "/no/such/ca.pem"], "--tls-ca /no/such/ca.pem: no such file"),
    (["--quota=-2;" + A], "invalid negative parameter for quota set"),
])
def test_bad_values_are_one_line(capsys, argv, says):
    assert says in refused(capsys, *argv)


def test_a_port_out_of_range_in_the_file_is_refused(tmp_path, capsys):
    path = tmp_path / "miner.toml"
    path.write_text("[api]\nport = 70000\n")
    assert "api port 70000: a port is 1-65535" in refused(capsys, "-c", str(path))


@pytest.mark.parametrize("spec, says", [
    ("bm1366:/dev/x,frequncy=300", "unknown option 'frequncy' (did you mean frequency?); bm1366 takes: baud, chip,"),
    ("u3:/dev/x,fraq=200", "unknown option 'fraq' (did you mean freq?)"),
    ("bm1397:/dev/x,chips=0", "chips=0: a chain has at least 1 chip"),
])
def test_device_option_typos_and_impossible_values(spec, says):
    manager = DeviceManager(SimpleNamespace(), lambda n: None, [DeviceSpec.parse(spec)], drivers=load_drivers(),
                            scan_usb=False, cpu=False)
    with pytest.raises(DeviceError) as exc:
        manager.setup()
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_known_device_options_pass():
    manager = DeviceManager(SimpleNamespace(), lambda n: None,
                            [DeviceSpec.parse("bm1366:/dev/x,frequency=300,chips=2,difficulty=0.01")],
                            drivers=load_drivers(), scan_usb=False, cpu=False)
    assert len(manager.setup()) == 1


async def test_a_miner_whose_every_device_is_dead_stops():
    dead = SimpleNamespace(name="ICA0", stats=SimpleNamespace(state=DeviceState.DEAD, last_error="not an Icarus"))
    alive = SimpleNamespace(name="CPU", stats=SimpleNamespace(state=DeviceState.ALIVE, last_error=""))
    stopped = asyncio.Event()
    miner = SimpleNamespace(devices=[dead, alive], request_stop=stopped.set)
    watch = asyncio.create_task(compose.stop_when_all_dead(miner, interval=0.01))
    await asyncio.sleep(0.05)
    assert not stopped.is_set()  # one device still mines
    alive.stats.state = DeviceState.DEAD
    await asyncio.wait_for(stopped.wait(), 5)
    await watch
    assert compose.every_device_dead(miner.devices) and not compose.every_device_dead([])


def test_restart_does_not_put_the_working_directory_on_the_path():
    command = compose.restart_command(["-o", A])
    assert command[1:4] == ["-P", "-m", "miner"] and command[-2:] == ["-o", A]


def test_emulate_help_lists_only_emulatable_devices_and_their_options():
    text = emulate_usage(load_drivers())
    assert "nano2" not in text and "avalonm" not in text and "cpu" not in text.split("devices (")[1]
    assert "[--chips N]" in text and "[--modules" in text and "[--difficulty D]" in text
    assert "difficulty=D" in text  # the rule a user forgets


def test_api_description_is_every_replys_status_description():
    from miner.frontends.cgminer import handle_request

    view = SimpleNamespace(description="pyminer/0.1.0", version="0.1.0", api_description="rig 7")
    reply = json.loads(handle_request(b'{"command":"version"}', view).rstrip(b"\0"))
    assert reply["STATUS"][0]["Description"] == "rig 7"
    assert reply["VERSION"][0]["Miner"] == "pyminer 0.1.0"  # the version reply keeps this miner's name
    view.api_description = None
    assert json.loads(handle_request(b'{"command":"version"}', view).rstrip(b"\0"))["STATUS"][0]["Description"] == (
        "pyminer/0.1.0")


def test_a_toml_key_typo_names_the_likely_key(tmp_path, capsys):
    path = tmp_path / "miner.toml"
    path.write_text("[miner]\nthreds = 2\n")
    assert "unknown key 'miner.threds' (did you mean 'miner.threads'?" in refused(capsys, "-c", str(path))


def test_a_missing_ca_file_of_a_file_pool_is_refused(tmp_path, capsys):
    path = tmp_path / "miner.toml"
    path.write_text('[[pool]]\nurl = "stratum+ssl://pool.example:443"\nuser = "u"\ntls-ca = "/no/ca.pem"\n')
    assert "pool 0 tls-ca /no/ca.pem: no such file" in refused(capsys, "-c", str(path))
