"""A share flood stays bounded: the nonce queue between device threads and the share path, and
one log line per kind of event per interval."""

import asyncio
import logging
import threading

import pytest

from miner.core.lograte import LogLimiter
from miner.core.nonce_queue import NonceQueue
from miner.core.work import Nonce


def nonce(n: int) -> Nonce:
    return Nonce(1, n, device="cpu0")


def test_below_the_limit_nothing_is_shed_and_order_is_kept():
    queue = NonceQueue(limit=5)
    assert all(queue.put(nonce(n)) for n in range(5))
    assert queue.shed == 0 and len(queue) == 5
    assert [x.nonce for x in queue.take(3)] == [0, 1, 2]
    assert [x.nonce for x in queue.take(10)] == [3, 4]
    assert queue.take(10) == []


def test_a_full_queue_sheds_the_oldest_and_counts_it():
    queue = NonceQueue(limit=3)
    results = [queue.put(nonce(n)) for n in range(5)]
    assert results == [True, True, True, False, False]
    assert queue.shed == 2 and len(queue) == 3
    assert [x.nonce for x in queue.take(10)] == [2, 3, 4]


def test_a_bad_limit_is_refused():
    with pytest.raises(ValueError):
        NonceQueue(limit=0)


def test_threads_flooding_the_queue_wake_the_loop_once_per_batch_and_stay_bounded():
    async def main() -> tuple[int, int, int]:
        queue = NonceQueue(limit=1000)
        loop = asyncio.get_running_loop()
        queue.bind(loop)
        done = threading.Event()

        def flood() -> None:
            for n in range(50_000):
                queue.put(nonce(n))
            done.set()
        thread = threading.Thread(target=flood)
        thread.start()
        taken = 0
        while not (done.is_set() and len(queue) == 0):
            try:
                await asyncio.wait_for(queue.wait(), 0.05)
            except TimeoutError:
                continue
            batch = queue.take(256)
            assert len(batch) <= 256
            taken += len(batch)
            await asyncio.sleep(0)
        thread.join()
        return taken, queue.shed, queue.wakes

    taken, shed, wakes = asyncio.run(main())
    assert taken + shed == 50_000  # every nonce was either checked or counted as shed
    assert wakes < 50_000  # never one callback per nonce


def test_wait_returns_at_once_when_nonces_are_queued():
    async def main() -> None:
        queue = NonceQueue()
        queue.bind(asyncio.get_running_loop())
        queue.put(nonce(1))
        await asyncio.wait_for(queue.wait(), 1.0)
        assert len(queue.take(5)) == 1
    asyncio.run(main())


def test_log_limiter_says_how_many_lines_it_left_out(caplog):
    caplog.set_level(logging.INFO)
    limiter = LogLimiter(logging.getLogger("test.flood"), interval=10.0)
    assert limiter.log(0.0, logging.INFO, "stale", "stale share %d", 1)
    assert not any(limiter.log(t, logging.INFO, "stale", "stale share %d", 2) for t in (1.0, 5.0, 9.9))
    assert limiter.log(0.5, logging.INFO, "other", "another kind")  # kinds are limited apart
    assert limiter.log(10.0, logging.INFO, "stale", "stale share %d", 3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["stale share 1", "another kind", "stale share 3 (and 3 more like it in the last 10 s)"]


def test_a_flood_of_stale_shares_is_one_log_line_per_interval(caplog):
    from tests.unit.test_stratum_session import PREV2, mining, notify, share
    caplog.set_level(logging.INFO)
    session, job = mining()
    session.receive_data(notify("2", prevhash=PREV2), 0.0)  # job "1" is dead now
    for n in range(1000):
        session.offer(share(job, n), n / 1000)  # within one second
    assert sum("stale share" in r.getMessage() for r in caplog.records) == 1


async def test_a_put_from_the_loops_own_thread_wakes_the_waiter_without_the_self_pipe(monkeypatch):
    """A device mining on the loop (an Icarus stick) puts from the loop's thread: the waiter wakes
    at once (the event is set there); the thread-safe path (a self-pipe write, a read, one more
    pass) is for device threads."""
    loop = asyncio.get_running_loop()
    queue = NonceQueue()
    queue.bind(loop)
    threadsafe: list[object] = []
    real = loop.call_soon_threadsafe

    def spy(callback, *args, **kwargs):
        if getattr(callback, "__name__", "") == "_wake":  # the queue's wake, not asyncio's own uses
            threadsafe.append(callback)
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", spy)
    waiter = asyncio.ensure_future(queue.wait())
    await asyncio.sleep(0)
    queue.put(nonce(1))
    await asyncio.wait_for(waiter, 2)
    assert threadsafe == [] and queue.wakes == 1
    queue.take(10)
    waiter = asyncio.ensure_future(queue.wait())
    await asyncio.sleep(0)
    await asyncio.to_thread(queue.put, nonce(2))  # from another thread: the thread-safe way
    await asyncio.wait_for(waiter, 2)
    assert len(threadsafe) == 1 and queue.wakes == 2
