"""Stratum V2 costs on one core (docs/sv2.md): the Noise handshake (both sides), share submits through
the codec and ChaCha20-Poly1305 each way, bulk frame throughput, and a SetNewPrevHash turned into a
job for the devices, beside Stratum V1's mining.notify through its session as the baseline.

    python benchmarks/bench_sv2.py [--rounds N]

Prints a table (operation, figure, ratio to the V1 baseline where one applies) and the command.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from miner.sources.stratum.session import PublishJob, StratumSession  # noqa: E402
from miner.sources.stratum.url import PoolConfig  # noqa: E402
from miner.sources.sv2 import codec as c  # noqa: E402
from miner.sources.sv2 import noise as n  # noqa: E402
from miner.sources.sv2 import secp  # noqa: E402
from miner.sources.sv2.session import Sv2Session  # noqa: E402

AUTH = hashlib.sha256(b"bench authority").digest()
STATIC = hashlib.sha256(b"bench static").digest()
BRANCH = tuple(hashlib.sha256(bytes([i])).digest() for i in range(12))


def pair() -> tuple[n.NoiseTransport, n.NoiseTransport, float]:
    cert = n.Certificate.issue(AUTH, secp.xonly_public(STATIC), 0, 2**32 - 1)
    t0 = time.perf_counter()
    initiator = n.NoiseInitiator(secp.xonly_public(AUTH))
    act2, server = n.NoiseResponder(STATIC, cert).respond(initiator.act1())
    client = initiator.act2(act2, time.time())
    return client, server, time.perf_counter() - t0


def handshake_ms(rounds: int) -> float:
    return statistics.median(pair()[2] for _ in range(rounds)) * 1000


def submits_per_second(seconds: float = 1.0) -> float:
    client, server, _ = pair()
    frame = c.encode_frame(c.SubmitSharesExtended(1, 1, 2, 3, 4, 5, bytes(8)))
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            server.receive_data(client.encrypt_frame(c.encode_frame(c.SubmitSharesExtended(1, count, 2, 3, 4, 5,
                                                                                         bytes(8)))))
            count += 1
    assert c.decode_frame(frame).sequence_number == 1
    return count / (time.perf_counter() - start)


def bulk_mb_per_second(seconds: float = 1.0) -> float:
    client, server, _ = pair()
    payload = os.urandom(200_000)
    frame = c.encode_header(0, True, 0x1F, len(payload)) + payload
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        assert server.receive_data(client.encrypt_frame(frame)) == [frame]
        done += len(frame)
    return done / (time.perf_counter() - start) / 1e6


def sv2_prev_hash_to_job_us(rounds: int) -> float:
    url = f"stratum2+tcp://127.0.0.1:1/{n.encode_authority_key(secp.xonly_public(AUTH))}"
    session = Sv2Session(PoolConfig(url, "u"), "pool0")
    cert = n.Certificate.issue(AUTH, secp.xonly_public(STATIC), 0, 2**32 - 1)
    session.connection_made(0.0)
    act2, pool = n.NoiseResponder(STATIC, cert).respond(session.data_to_send())
    session.receive_data(act2, 0.0)
    session.receive_data(pool.encrypt_frame(c.encode_frame(c.SetupConnectionSuccess(2, 0))), 0.0)
    session.receive_data(pool.encrypt_frame(c.encode_frame(c.OpenExtendedMiningChannelSuccess(
        1, 1, b"\xff" * 32, 8, b"abcd", 0))), 0.0)
    samples = []
    for job_id in range(1, rounds + 1):
        data = pool.encrypt_frame(c.encode_frame(c.NewExtendedMiningJob(
            1, job_id, None, 0x20000000, True, BRANCH, b"p" * 60, b"s" * 120))) + pool.encrypt_frame(
            c.encode_frame(c.SetNewPrevHash(1, job_id, os.urandom(32), 1700000000, 0x1D00FFFF)))
        t0 = time.perf_counter()
        events = session.receive_data(data, 0.0)
        samples.append(time.perf_counter() - t0)
        assert any(isinstance(e, PublishJob) for e in events)
    return statistics.median(samples) * 1e6


def v1_notify_to_job_us(rounds: int) -> float:
    session = StratumSession(PoolConfig("stratum+tcp://127.0.0.1:1", "u", version_rolling=False), "pool0")
    session.connection_made(0.0)
    session.data_to_send()
    session.receive_data(b'{"id":1,"result":[[],"0800a1b2",4],"error":null}\n{"id":2,"result":true,"error":null}\n',
                         0.0)
    branch = ",".join(f'"{b.hex()}"' for b in BRANCH)
    samples = []
    for job_id in range(1, rounds + 1):
        line = (f'{{"id":null,"method":"mining.notify","params":["{job_id:x}","{os.urandom(32).hex()}",'
                f'"{"70" * 60}","{"73" * 120}",[{branch}],"20000000","1d00ffff","6553f100",true]}}\n').encode()
        t0 = time.perf_counter()
        events = session.receive_data(line, 0.0)
        samples.append(time.perf_counter() - t0)
        assert any(isinstance(e, PublishJob) for e in events)
    return statistics.median(samples) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    v1 = v1_notify_to_job_us(args.rounds)
    v2 = sv2_prev_hash_to_job_us(args.rounds)
    print(f"{'operation':<56} {'figure':>14}  ratio to V1")
    print("-" * 84)
    print(f"{'Noise NX handshake, both sides (median)':<56} {handshake_ms(50):>11.2f} ms")
    print(f"{'SubmitSharesExtended encrypted + decrypted per second':<56} {submits_per_second():>14,.0f}")
    print(f"{'200 KB frames encrypted + decrypted':<56} {bulk_mb_per_second():>10.1f} MB/s")
    print(f"{'V1 mining.notify -> job (median, baseline)':<56} {v1:>11.1f} us  1.00")
    print(f"{'V2 NewExtendedMiningJob + SetNewPrevHash -> job (median)':<56} {v2:>11.1f} us  {v2 / v1:.2f}")
    print(f"\ncommand: python benchmarks/bench_sv2.py --rounds {args.rounds}")


if __name__ == "__main__":
    main()
