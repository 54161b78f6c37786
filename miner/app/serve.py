"""`miner serve`: the Stratum server's own options, then the options of `miner` (pools: proxy mode)
or of `miner solo` (a node: solo pool mode), parsed by those commands' own parsers (docs/serve.md §7).

    miner serve --listen 0.0.0.0:3333 -o stratum+tcp://pool:3333 -u me -p x
    miner serve --listen 0.0.0.0:3333 --listen-sv2 0.0.0.0:3336 -o stratum2+tcp://pool:3336/KEY -u me -p x
    miner serve --listen 0.0.0.0:3333 --rpc-url http://127.0.0.1:8332 --rpc-cookie ~/.bitcoin/.cookie --address bc1...
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from miner.app.arguments import positive_float, positive_int

DEFAULT_LISTEN = "127.0.0.1:3333"
DESCRIPTION = ("Run a Stratum v1 server (and, with --listen-sv2, a Stratum V2 one) for the miners on your LAN "
               "beside the local devices. Its jobs come from "
               "the pools given as for `miner` (-o/-u/-p: proxy mode, one upstream connection) or from a node "
               "given as for `miner solo` (--rpc-url/--address: solo pool mode). Every other option of those "
               "commands works the same.")


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 3333
    password: str | None = None
    shares_per_minute: float = 6.0
    start_difficulty: float = 0.001
    min_difficulty: float = 0.0001
    max_connections: int = 1000
    listen_sv2: tuple[str, int] | None = None  # the Stratum V2 listener (docs/serve.md §10)
    sv2_authority_key: str | None = None  # a key file; None: the state dir's, made on first use
    sv2_share_batch: int = 10
    sv2_cert_validity: int = 3600


def listen_address(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"--listen needs HOST:PORT, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen: port {port_text!r} is not a number") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"--listen: port {port} out of range")
    return host.strip("[]"), port


def listen_sv2_address(text: str) -> tuple[str, int]:
    try:
        return listen_address(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("--listen", "--listen-sv2")) from None


def certificate_validity(text: str) -> int:
    value = positive_int(text)
    if value < 120:
        raise argparse.ArgumentTypeError(f"must be at least 120 seconds, got {text}")
    return value


def minimum_difficulty(text: str) -> float:
    value = positive_float(text)
    if value < 0.0001:
        raise argparse.ArgumentTypeError(f"must be at least 0.0001, got {text}")
    return value


def serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="miner serve", description=DESCRIPTION, add_help=False,
                                epilog="Then the options of `miner --help` or `miner solo --help`.")
    p.add_argument("-h", "--help", action="store_true", help="this help, then the mining options'")
    p.add_argument("--listen", type=listen_address, default=listen_address(DEFAULT_LISTEN), metavar="HOST:PORT",
                   help=f"where miners connect (default {DEFAULT_LISTEN}; 0.0.0.0:3333 for the whole LAN)")
    p.add_argument("--listen-sv2", type=listen_sv2_address, metavar="HOST:PORT",
                   help="also serve Stratum V2 (Noise-encrypted) here, e.g. 0.0.0.0:3336; the URL miners use "
                        "is printed at start")
    p.add_argument("--sv2-authority-key", metavar="FILE",
                   help="the authority key file (authority_secret_key = \"...\", as in SRI's pool config); "
                        "default: one made on first use in the state directory")
    p.add_argument("--sv2-share-batch", type=positive_int, default=10, metavar="N",
                   help="answer Stratum V2 shares in batches of N (SRI's share_batch_size; default 10)")
    p.add_argument("--sv2-cert-validity", type=certificate_validity, default=3600, metavar="SECONDS",
                   help="validity of the server's certificate, renewed before it ends (default 3600)")
    p.add_argument("--serve-password", metavar="TEXT", help="the password every miner must give (default: any)")
    p.add_argument("--serve-rate", type=positive_float, default=6.0, metavar="N",
                   help="vardiff's target shares per minute per miner (default 6)")
    p.add_argument("--serve-start-diff", type=minimum_difficulty, default=0.001, metavar="D",
                   help="a new miner's difficulty until vardiff or its suggest_difficulty (default 0.001)")
    p.add_argument("--serve-min-diff", type=minimum_difficulty, default=0.0001, metavar="D",
                   help="vardiff's lowest difficulty (default 0.0001)")
    p.add_argument("--max-connections", type=positive_int, default=1000, metavar="N",
                   help="downstream connections at most (default 1000)")
    return p


def file_arguments(table: dict, argv: list[str]) -> list[str]:
    """A config file's [serve] table as options, for those the command line does not give (it wins)."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    out: list[str] = []
    for key, value in table.items():
        if f"--{key}" not in given:
            out += [f"--{key}", str(value)]
    return out


def split_arguments(argv: list[str]) -> tuple[ServeOptions, list[str], bool]:
    """(the server's options, the rest for `miner` or `miner solo`, whether the rest is solo)."""
    args, rest = serve_parser().parse_known_args(argv)
    host, port = args.listen
    options = ServeOptions(host, port, args.serve_password, args.serve_rate, args.serve_start_diff,
                           max(args.serve_min_diff, 0.0001), args.max_connections, args.listen_sv2,
                           args.sv2_authority_key, args.sv2_share_batch, args.sv2_cert_validity)
    solo = any(a == "--rpc-url" or a.startswith("--rpc-url=") for a in rest)
    if args.help:
        rest = [*rest, "--help"]
    return options, rest, solo
