"""`miner serve --listen-sv2` costs on one core, CPU time (docs/serve.md §10.6): the server's side of a
V2 connection (the Noise handshake as responder, with the certificate issued at start,
then SetupConnection, the channel and the first job), shares checked per second through the whole
V2 path (decrypt, decode, rebuild, hash with the C core, batch the answer), and one source job fanned
out to N V2 connections, each beside the same figure for the V1 listener's session as the baseline.

    python benchmarks/bench_serve_sv2.py [--connections N] [--shares N]

Prints a table (operation, figure, ratio to V1) and the command. Shares are at a difficulty every
hash meets, so the figure is the server's cost per submit, not a search.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from miner.core.targets import difficulty_to_target  # noqa: E402
from miner.core.work import Job  # noqa: E402
from miner.server import session as ds  # noqa: E402
from miner.server.extranonce import PrefixPool, layout_for  # noqa: E402
from miner.server.sv2_keys import CertificateIssuer, Sv2Identity  # noqa: E402
from miner.server.sv2_session import Sv2DownstreamSession  # noqa: E402
from miner.server.workers import WorkerBook  # noqa: E402
from miner.sources.sv2 import secp  # noqa: E402
from tests.helpers.stratum_pool import BRANCH, COINB1, COINB2  # noqa: E402
from tests.helpers.sv2_downstream import V2Script  # noqa: E402

TINY = 1e-30  # every hash meets it
IDENTITY = Sv2Identity(secp.new_secret(), secp.new_secret())


def job(n: int = 1, clean: bool = True) -> Job:
    return Job(job_id=str(n), prevhash=os.urandom(32), coinb1=COINB1, coinb2=COINB2, merkle_branch=tuple(BRANCH),
               version=0x20000000, nbits=0x1D00FFFF, ntime=0x6553F100, clean=clean, extranonce1=b"\x08\x00\x00\x02",
               extranonce2_size=8, share_target=difficulty_to_target(TINY), version_mask=0x1FFFE000, source="pool0")


def rules(source: Job) -> ds.Rules:
    layout = layout_for(source)
    return ds.Rules(layout, PrefixPool(layout.capacity), WorkerBook(), start_difficulty=TINY, min_difficulty=TINY,
                    shares_per_minute=1e12, messages_per_second=1e12, burst=1e12)


def v2_connect(r: ds.Rules, source: Job, issuer: CertificateIssuer) -> tuple[Sv2DownstreamSession, V2Script, float]:
    """(session, script, server CPU seconds for handshake + setup + channel + first job)."""
    script = V2Script(IDENTITY.authority_key)
    hello = script.hello()
    t0 = time.process_time()
    session = Sv2DownstreamSession(r, issuer, 0.0, "bench", batch_size=10)
    session.send_job(source, 0.0)
    session.receive_data(hello, 0.0)
    spent = time.process_time() - t0
    script.take(session.data_to_send())
    for frame in (script.setup(), script.open("bench.1")):
        t0 = time.process_time()
        session.receive_data(frame, 0.0)
        out = session.data_to_send()
        spent += time.process_time() - t0
        script.take(out)
    return session, script, spent


def v1_connect(r: ds.Rules, source: Job) -> tuple[ds.DownstreamSession, float]:
    t0 = time.process_time()
    session = ds.DownstreamSession(r, 0.0, "bench")
    session.send_job(source, "1", session.notify_line(source, "1", True), 0.0)
    session.receive_data(b'{"id":1,"method":"mining.subscribe","params":["b"]}\n'
                         b'{"id":2,"method":"mining.authorize","params":["bench.1","x"]}\n', 0.0)
    session.data_to_send()
    return session, time.process_time() - t0


def v2_shares_per_second(count: int) -> float:
    source = job()
    session, script, _ = v2_connect(rules(source), source, CertificateIssuer(IDENTITY))
    cid = next(iter(script.channels))
    head, version, ntime, extranonce = script.header(cid)
    frames = [script.submit(cid, nonce, version, ntime, extranonce) for nonce in range(count)]
    t0 = time.process_time()
    for frame in frames:
        session.receive_data(frame, 1.0)
        session.data_to_send()
    spent = time.process_time() - t0
    assert session.rules.workers.get("bench.1").accepted == count
    return count / spent


def v1_shares_per_second(count: int) -> float:
    source = job()
    session, _ = v1_connect(rules(source), source)
    lines = [(f'{{"id":{n},"method":"mining.submit","params":["bench.1","{session.session_id}.1","000000000000",'
              f'"6553f100","{n:08x}"]}}\n').encode() for n in range(count)]
    t0 = time.process_time()
    for line in lines:
        session.receive_data(line, 1.0)
        session.data_to_send()
    spent = time.process_time() - t0
    assert session.rules.workers.get("bench.1").accepted == count
    return count / spent


def fan_out_ms(connections: int) -> tuple[float, float]:
    """CPU ms to give one new source job to every connection: (V1, V2)."""
    source = job()
    r1, r2 = rules(source), rules(source)
    v1 = [v1_connect(r1, source)[0] for _ in range(connections)]
    issuer = CertificateIssuer(IDENTITY)
    v2 = [v2_connect(r2, source, issuer)[0] for _ in range(connections)]
    new = job(2)
    t0 = time.process_time()
    line = v1[0].notify_line(new, "2", True)
    for s in v1:
        s.send_job(new, "2", line, 2.0)
        s.data_to_send()
    one = time.process_time() - t0
    t0 = time.process_time()
    for s in v2:
        s.send_job(new, 2.0)
        s.data_to_send()
    two = time.process_time() - t0
    return one * 1000, two * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--shares", type=int, default=5000)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    source = job()
    issuer = CertificateIssuer(IDENTITY)
    v2_connects = statistics.median(v2_connect(rules(source), source, issuer)[2] for _ in range(50)) * 1000
    v1_connects = statistics.median(v1_connect(rules(source), source)[1] for _ in range(50)) * 1000
    v1_rate, v2_rate = v1_shares_per_second(args.shares), v2_shares_per_second(args.shares)
    v1_fan, v2_fan = fan_out_ms(args.connections)
    print(f"{'operation (server side, one core, CPU time)':<60} {'figure':>14}  ratio to V1")
    print("-" * 88)
    print(f"{'V1 subscribe + authorize + first job (median, baseline)':<60} {v1_connects:>11.3f} ms  1.00")
    print(f"{'V2 handshake + setup + channel + first job (median)':<60} {v2_connects:>11.3f} ms  "
          f"{v2_connects / v1_connects:.1f}")
    print(f"{'V1 mining.submit checked per second (baseline)':<60} {v1_rate:>14,.0f}  1.00")
    print(f"{'V2 SubmitSharesExtended checked per second':<60} {v2_rate:>14,.0f}  {v2_rate / v1_rate:.2f}")
    print(f"{f'V1 new job to {args.connections} connections (baseline)':<60} {v1_fan:>11.2f} ms  1.00")
    print(f"{f'V2 new job + SetNewPrevHash to {args.connections} connections':<60} {v2_fan:>11.2f} ms  "
          f"{v2_fan / v1_fan:.2f}")
    print(f"\nload average {os.getloadavg()[0]:.2f}; command: python benchmarks/bench_serve_sv2.py "
          f"--connections {args.connections} --shares {args.shares}")


if __name__ == "__main__":
    main()
