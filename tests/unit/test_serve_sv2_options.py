"""`miner serve`'s Stratum V2 options (docs/serve.md §10.4): the flags, the config file's [serve] table
under the command line, and one line for a bad value."""

from __future__ import annotations

import pytest

from miner.app import config as cfg
from miner.app.serve import file_arguments, split_arguments


def test_listen_sv2_and_its_options_parse_and_default_off():
    options, rest, solo = split_arguments(["--listen-sv2", "0.0.0.0:3336", "--sv2-share-batch", "4",
                                           "--sv2-cert-validity", "600", "-o", "stratum+tcp://p:3333", "-u", "u"])
    assert options.listen_sv2 == ("0.0.0.0", 3336) and options.sv2_share_batch == 4
    assert options.sv2_cert_validity == 600 and options.sv2_authority_key is None
    assert rest == ["-o", "stratum+tcp://p:3333", "-u", "u"] and not solo
    assert split_arguments([])[0].listen_sv2 is None


@pytest.mark.parametrize(("argv", "words"), [
    (["--listen-sv2", "3336"], "--listen-sv2 needs HOST:PORT"),
    (["--listen-sv2", "h:99999"], "--listen-sv2: port 99999 out of range"),
    (["--sv2-cert-validity", "30"], "at least 120 seconds"),
])
def test_bad_values_are_one_line(argv, words, capsys):
    with pytest.raises(SystemExit):
        split_arguments(argv)
    assert words in capsys.readouterr().err


def test_the_config_files_serve_table_applies_under_the_command_line(tmp_path):
    path = tmp_path / "miner.toml"
    path.write_text('[serve]\nlisten = "0.0.0.0:3333"\nlisten-sv2 = "0.0.0.0:3336"\nsv2-share-batch = 3\n')
    table = cfg.load(path).serve
    assert table == {"listen": "0.0.0.0:3333", "listen-sv2": "0.0.0.0:3336", "sv2-share-batch": 3}
    options = split_arguments(file_arguments(table, []))[0]
    assert options.listen_sv2 == ("0.0.0.0", 3336) and options.sv2_share_batch == 3 and options.host == "0.0.0.0"
    argv = ["--listen-sv2", "127.0.0.1:4444"]
    options = split_arguments(file_arguments(table, argv) + argv)[0]
    assert options.listen_sv2 == ("127.0.0.1", 4444)  # the command line wins


@pytest.mark.parametrize(("text", "words"), [
    ('[serve]\nlisten-sv3 = "x"\n', "unknown key 'serve.listen-sv3' (did you mean 'serve.listen-sv2'?"),
    ("[serve]\nlisten-sv2 = true\n", "must be a string or a number"),
    ('serve = "x"\n', "must be a table"),
])
def test_a_bad_serve_table_is_one_line_naming_the_key(tmp_path, text, words):
    path = tmp_path / "miner.toml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(path)
    assert words in str(info.value) and "\n" not in str(info.value)
