"""The config file: precedence CLI > file > defaults, cgminer.conf import, one clear error per bad file."""

import json

import pytest
from miner.drivers.kit.usb import UsbId

from miner.app import config as cfg
from miner.app import settings as st
from miner.app.cli import main, mining_parser
from miner.devices.base import DeviceSpec

TOML = """\
[miner]
threads = 3
hotplug = 7.5
status-interval = 9

[api]
listen = true
port = 4029
allow = ["W:127.0.0.1", "R:10.0.0.0/8"]

[http]
listen = "127.0.0.1:9090"
token = "tok"

[[pool]]
url = "stratum+tcp://main.example:3333"
user = "me.one"
pass = "pw1"
suggest-diff = 0.5
xnsub = true

[[pool]]
url = "backup.example:4444"
user = "me.two"
tls = true

[devices.icarus]
frequency = 200
chips = 1
ports = ["/dev/ttyUSB7"]

[devices.cpu]
enabled = false
"""


def effective(argv, path) -> st.Settings:
    given = vars(mining_parser().parse_args(["--config", str(path), *argv]))
    return st.resolve(st.MINE, given)


def test_file_values_fill_what_the_command_line_leaves(tmp_path):
    path = tmp_path / "miner.toml"
    path.write_text(TOML)
    e = effective(["--threads", "5", "--api-port", "5000"], path)
    sources = e.origins
    assert (e.devices.threads, sources["threads"]) == (5, "cli")  # CLI beats file
    assert (e.operating.api_port, sources["api_port"]) == (5000, "cli")
    assert (e.devices.hotplug, sources["hotplug"]) == (7.5, f"file {path}")  # file beats default
    assert e.run.status_interval == 9.0 and e.operating.api_listen is True
    assert e.operating.api_allow == "W:127.0.0.1,R:10.0.0.0/8" and e.operating.http == "127.0.0.1:9090"
    assert (e.pools.failover_switch_delay, sources["failover_switch_delay"]) == (0.0, "default")
    assert e.devices.cpu is False and sources["cpu"] == f"file {path}"
    assert e.devices.specs == ("icarus:/dev/ttyUSB7,frequency=200.0,chips=1",)
    assert DeviceSpec.parse(e.devices.specs[0]).options == {"frequency": "200.0", "chips": "1"}
    assert e.pools_from == f"file {path}"
    pools = st.pool_configs(e)
    assert [(p.url, p.user, p.password) for p in pools] == [
        ("stratum+tcp://main.example:3333", "me.one", "pw1"), ("stratum+ssl://backup.example:4444", "me.two", "x")]
    assert pools[0].suggest_difficulty == 0.5 and pools[0].xnsub and not pools[1].xnsub
    # a flag given on the command line for a boolean the file also sets
    assert effective(["--cpu"], path).devices.cpu is True


def test_command_line_pools_replace_the_files(tmp_path):
    path = tmp_path / "miner.toml"
    path.write_text(TOML)
    e = effective(["-o", "stratum+tcp://cli.example:1", "-u", "cli"], path)
    assert e.pools_from == "cli"
    shown = st.show(e)
    assert "pool 0: stratum+tcp://cli.example:1 user=cli pass=***" in shown
    assert "main.example" not in shown


def test_config_show_names_each_source_and_hides_secrets(tmp_path, capsys):
    path = tmp_path / "miner.toml"
    path.write_text(TOML)
    assert main(["config", "show", "--config", str(path), "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "threads = 2  # cli" in out
    assert f"hotplug = 7.5  # file {path}" in out
    assert "failover-switch-delay = 0.0  # default" in out
    assert 'http-token = ***' in out and "tok\"" not in out and "pw1" not in out
    assert "pool 1: backup.example:4444 user=me.two pass=*** tls" in out


def test_cgminer_conf_import(tmp_path):
    path = tmp_path / "cgminer.conf"
    path.write_text(json.dumps({
        "pools": [{"url": "stratum+tcp://pool.example:3333", "user": "w1", "pass": "p1"},
                  {"url": "stratum+tcp://backup.example:3333", "user": "w2", "pass": "p2"}],
        "api-listen": True, "api-port": "4030", "api-allow": "W:127.0.0.1,R:192.168.1/24",
        "hotplug": "10", "log": "15", "icarus-options": "115200:1:1", "failover-only": True,
    }, indent=1))
    e = effective([], path)
    api = e.operating
    assert api.api_listen is True and api.api_port == 4030 and api.api_allow == "W:127.0.0.1,R:192.168.1/24"
    assert e.devices.hotplug == 10.0 and e.run.status_interval == 15.0
    assert e.file.ignored == ["icarus-options"]  # failover-only is cgminer's, and means something here now
    assert e.cgminer.failover_only is True
    pools = st.pool_configs(e)
    assert [(p.url, p.user, p.password) for p in pools] == [
        ("stratum+tcp://pool.example:3333", "w1", "p1"), ("stratum+tcp://backup.example:3333", "w2", "p2")]
    assert effective(["--api-port", "1"], path).operating.api_port == 1


def test_cgminer_api_network_allows_reads_from_anywhere(tmp_path):
    path = tmp_path / "cgminer.conf"
    path.write_text('{"api-listen": true, "api-network": true}')
    assert effective([], path).operating.api_allow == "R:0/0"


@pytest.mark.parametrize("text, expected", [
    ("[api]\nlisten = true\nport = \"abc\"\n", ":3: key 'api.port': expected an integer, got 'abc'"),
    ("[miner]\nthreads = 2\nthraeds = 3\n", ":3: unknown key 'miner.thraeds'"),
    ("[api]\nport = 4028\n[htp]\nlisten = \"x\"\n", ":3: unknown key 'htp'"),
    ("[[pool]]\nurl = \"stratum+tcp://a:1\"\nuser = \"u\"\n[[pool]]\nurl = \"stratum+tcp://b:2\"\nuser = \"u\"\n"
     "suggest-diff = \"lots\"\n", ":7: key 'pool[1].suggest-diff': expected a number"),
    ("[[pool]]\nurl = \"ftp://a:1\"\nuser = \"u\"\n", ":2: key 'pool[0].url': pool url 'ftp://a:1': unknown scheme"),
    ("[devices.icarus]\nfrequency = \"fast\"\n", ":2: key 'devices.icarus.frequency': expected a number"),
    ("[api]\nport = 4028\nport = 4029\n", "not valid TOML: Cannot overwrite a value (at line 3"),
    ("[api\nport = 1\n", "not valid TOML: Expected ']' at the end of a table declaration (at line 1"),
])
def test_a_bad_toml_file_is_one_line_naming_key_and_line(tmp_path, text, expected):
    path = tmp_path / "miner.toml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)) and expected in message, message


def test_a_bad_cgminer_conf_names_key_and_line(tmp_path):
    path = tmp_path / "cgminer.conf"
    path.write_text('{\n "pools": [\n  {"url": "stratum+tcp://a:1", "user": "u"},\n  {"url": "nope://b", "user": "u"}\n'
                    ' ],\n "api-port": "x"\n}\n')
    with pytest.raises(cfg.ConfigError, match=r"cgminer.conf:4: key 'pools\[1\].url': pool url"):
        cfg.load(path)
    path.write_text('{\n "api-listen": true,\n "api-port": "x"\n}\n')
    with pytest.raises(cfg.ConfigError, match=r"cgminer.conf:3: key 'api-port': expected an integer"):
        cfg.load(path)
    path.write_text('{\n "api-listen": true\n "api-port": 1\n}\n')
    with pytest.raises(cfg.ConfigError, match=r"cgminer.conf:3: not valid JSON"):
        cfg.load(path)


def test_the_miner_stops_with_the_config_error(tmp_path, capsys):
    path = tmp_path / "miner.toml"
    path.write_text("[api]\nport = -\n")
    with pytest.raises(SystemExit) as info:
        main(["--config", str(path), "--time-limit", "1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "miner.toml" in err and "line 2" in err
    with pytest.raises(SystemExit):
        main(["--config", str(tmp_path / "missing.toml")])
    assert "no such config file" in capsys.readouterr().err


class FakeDriver:
    name, aliases, description, companion_option = "fake", (), "a fake", ""
    usb_ids = (UsbId(0x1234, 0x5678),)

    def __init__(self):
        self.specs = []

    def create(self, spec, get_work, on_nonce, index):
        self.specs.append(spec)
        return spec


def test_per_driver_options_reach_found_devices_and_disabled_drivers_are_left_out(tmp_path):
    path = tmp_path / "miner.toml"
    path.write_text("[devices.fake]\nfrequency = 425\nchips = 2\n[devices.other]\nenabled = false\n")
    file = cfg.load(path)
    fake, other = FakeDriver(), FakeDriver()
    other.name = "other"
    drivers = cfg.configured_drivers({"fake": fake, "other": other}, file)
    assert set(drivers) == {"fake"}
    drivers["fake"].create(DeviceSpec("fake", "/dev/ttyUSB0", {"chips": "4"}), None, None, 0)
    assert fake.specs[0].options == {"frequency": "425.0", "chips": "4"}  # the spec's own option wins


def test_bad_api_allow_or_http_stops_before_mining(capsys):
    for argv, expected in ((["--api-allow", "Q:1.2.3.4"], "--api-allow"), (["--http", "localhost:web"], "--http")):
        with pytest.raises(SystemExit) as info:
            main([*argv, "--time-limit", "1"])
        assert info.value.code == 2 and expected in capsys.readouterr().err


def test_the_alerts_table_and_cgminer_keys_reach_the_alert_settings(tmp_path):
    path = tmp_path / "miner.toml"
    path.write_text('[alerts]\nwebhook = ["http://127.0.0.1:9/a", "https://ntfy.sh/t"]\npayout-check = "enforce"\n'
                    'payout-min = 97.5\nsharelog = "shares.csv"\nsyslog = true\nhashrate-below = "500G"\n')
    alerts = st.resolve(st.MINE, {"config": str(path)}).alerts
    assert alerts.webhooks == ("http://127.0.0.1:9/a", "https://ntfy.sh/t")
    assert (alerts.payout_check, alerts.payout_min, alerts.sharelog, alerts.syslog) == ("enforce", 97.5,
                                                                                        "shares.csv", True)
    assert alerts.hashrate_below == 500e9  # the flag's own parser: k/M/G suffixes
    path.write_text('[alerts]\npayout-min = 120\n')
    with pytest.raises(cfg.ConfigError, match="alerts.payout-min.*percentage"):
        cfg.load(path)
    path.write_text('[alerts]\npayout-check = "enforced"\n')
    with pytest.raises(cfg.ConfigError, match="alerts.payout-check.*expected one of warn, alert, enforce"):
        cfg.load(path)
    path.write_text('[alerts]\nweb-hook = "http://x"\n')
    with pytest.raises(cfg.ConfigError, match="did you mean 'alerts.webhook'"):
        cfg.load(path)
    conf = tmp_path / "cgminer.conf"
    conf.write_text(json.dumps({"pools": [], "sharelog": "/tmp/s.log", "cmd-dead": "notify-send dead"}))
    loaded = cfg.load(conf)
    assert (loaded.options["sharelog"], loaded.options["cmd_dead"]) == ("/tmp/s.log", "notify-send dead")
    assert "sharelog" not in loaded.ignored
