"""RateMeter stays bounded under a CPU device's chunk rate (issue 14, item 7: RSS over a soak)."""


def test_a_rate_meter_fed_every_4_ms_for_15_minutes_stays_small_and_right():
    """Issue 14, item 7: one sample per CPU chunk for 900 s was 225,000 samples per meter."""
    from miner.core.stats import BUCKET, RateMeter

    now = [0.0]
    meter = RateMeter(clock=lambda: now[0])
    for i in range(1, 250 * 1000 + 1):  # 1000 s at one add per 4 ms, 1,000 hashes each
        now[0] = i * 0.004
        meter.add(1000.0)
    assert len(meter._samples) <= 900 / BUCKET + 2
    for window in (5.0, 60.0, 900.0):
        assert abs(meter.rate(window) - 250_000) <= 250_000 * BUCKET / window + 1
    assert meter.total == 250_000_000
