"""Typed settings: the command line over the config file over the defaults, each value's origin,
and what each command takes; no argparse internals anywhere."""

import dataclasses
import inspect

import pytest
from hypothesis import given as hypothesis_given
from hypothesis import strategies as hst

from miner.app import config as cfg
from miner.app import settings as st
from miner.app.cli import mining_parser, solo_parser

SOLO_REQUIRED = ["--rpc-url", "http://127.0.0.1:18443", "--address", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"]


def given(parser, argv):
    return vars(parser.parse_args(argv))


def test_the_parser_returns_only_what_the_command_line_said():
    assert given(mining_parser(), []) == {}
    assert given(mining_parser(), ["--no-cpu", "-o", "stratum+tcp://a:1", "-o", "stratum+tcp://b:2", "-t", "2"]) == {
        "cpu": False, "url": ["stratum+tcp://a:1", "stratum+tcp://b:2"], "threads": 2}
    assert given(solo_parser(), [*SOLO_REQUIRED, "--refresh", "3"])["refresh"] == 3.0
    with pytest.raises(SystemExit):
        given(mining_parser(), ["--cpu", "--no-cpu"])  # still one or the other
    with pytest.raises(SystemExit):
        given(solo_parser(), ["--address", "x"])  # --rpc-url is required


def test_defaults_come_from_the_dataclasses_and_say_so():
    settings = st.merge(st.MINE, {}, None)
    assert settings.pools == st.PoolSettings() and settings.devices == st.DeviceSettings()
    assert settings.operating.api_port == 4028 and settings.run.status_interval == 5.0
    assert set(settings.origins.values()) == {"default"}
    assert settings.origins.keys() == {o.dest for o in st.options_for(st.MINE)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.run.quiet = True  # type: ignore[misc]


def test_command_line_beats_file_beats_default(tmp_path):
    path = tmp_path / "miner.toml"
    path.write_text("[miner]\nthreads = 3\nhotplug = 7.5\nquiet = true\n[api]\nport = 4029\n"
                    "[devices.cpu]\nenabled = false\n")
    file = cfg.load(path)
    settings = st.merge(st.MINE, given(mining_parser(), ["-t", "5", "--cpu"]), file)
    where = f"file {path}"
    assert (settings.devices.threads, settings.origins["threads"]) == (5, "cli")
    assert (settings.devices.cpu, settings.origins["cpu"]) == (True, "cli")  # over [devices.cpu] enabled
    assert (settings.devices.hotplug, settings.origins["hotplug"]) == (7.5, where)
    assert (settings.operating.api_port, settings.origins["api_port"]) == (4029, where)
    assert (settings.run.quiet, settings.origins["quiet"]) == (True, where)
    assert (settings.run.debug, settings.origins["debug"]) == (False, "default")
    assert st.merge(st.MINE, {}, file).devices.cpu is False  # the file's [devices.cpu] without a flag


def test_solo_takes_the_files_operating_settings_but_not_its_pools(tmp_path):
    path = tmp_path / "miner.toml"
    path.write_text('[miner]\nhotplug = 7\nfailover-switch-delay = 3\n[http]\nlisten = "127.0.0.1:8080"\n'
                    '[[pool]]\nurl = "stratum+tcp://pool.example:3333"\nuser = "me"\n')
    settings = st.resolve(st.SOLO, given(solo_parser(), [*SOLO_REQUIRED, "--config", str(path), "--api-listen"]))
    assert settings.devices.hotplug == 7 and settings.operating.http == "127.0.0.1:8080"
    assert settings.operating.api_listen is True and settings.origins["api_listen"] == "cli"
    assert settings.node.rpc_url == "http://127.0.0.1:18443" and settings.origins["rpc_url"] == "cli"
    assert "failover_switch_delay" not in settings.origins and settings.pools == st.PoolSettings()
    assert settings.pools_from == "none" and st.pool_configs(settings) == []
    assert settings.notes == (f"{path}: miner solo mines for the node; the file's pools are ignored",)
    # the same file for pool mining: its pools and its pool option count
    mining = st.resolve(st.MINE, given(mining_parser(), ["--config", str(path)]))
    assert mining.pools.failover_switch_delay == 3 and mining.pools_from == f"file {path}"
    assert [p.url for p in st.pool_configs(mining)] == ["stratum+tcp://pool.example:3333"]


def test_each_command_has_its_own_options():
    mine = {o.dest for o in st.options_for(st.MINE)}
    solo = {o.dest for o in st.options_for(st.SOLO)}
    operating = {"config", "api_listen", "api_port", "api_allow", "http", "http_token", "no_tui", "protocol_log",
                 "stats_file"}
    assert operating <= mine & solo
    assert {"url", "sandbox_diff", "failover_switch_delay"} <= mine - solo
    assert {"rpc_url", "address", "coinbase_tag", "refresh"} <= solo - mine


def test_no_argparse_internals():
    source = inspect.getsource(st)
    assert "_actions" not in source and "argparse._" not in source


@hypothesis_given(hst.from_regex(r"[a-z]{1,8}", fullmatch=True),
                  hst.from_regex(r"[A-Za-z0-9._~-]{1,16}", fullmatch=True),
                  hst.sampled_from(["127.0.0.1:18443", "[::1]:18443", "node.example:8332"]),
                  hst.sampled_from(["", "/", "/wallet/w"]))
def test_config_show_never_prints_a_password_from_a_url(user, password, host, path):
    from miner.app.settings import without_password

    url = f"http://{user}:{password}@{host}{path}"
    shown = without_password(url)
    assert shown == f"http://{user}:***@{host}{path}"
    assert without_password(f"http://{host}{path}") == f"http://{host}{path}"  # nothing to hide: unchanged


def test_config_show_hides_the_rpc_urls_password():
    settings = st.merge(st.SOLO, given(solo_parser(), ["--rpc-url", "http://alice:s3cret@[::1]:18443",
                                                        "--address", "bcrt1qexample"]), None)
    text = st.show(settings, st.SOLO)
    assert "s3cret" not in text and "alice:***@[::1]:18443" in text


def test_a_files_tls_flag_upgrades_v1_pools_and_leaves_stratum_v2_urls_alone(tmp_path):
    key = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
    file = cfg.FileConfig(tmp_path / "miner.toml", "toml", pools=[
        cfg.PoolEntry("stratum+tcp://pool.example:3333", "me", tls=True),
        cfg.PoolEntry(f"stratum2+tcp://pool.example:34254/{key}", "me", tls=True)])
    urls = [c.url for c in st.file_pools(file, st.merge(st.MINE, {}, None).pools)]
    assert urls == ["stratum+ssl://pool.example:3333", f"stratum2+tcp://pool.example:34254/{key}"]
