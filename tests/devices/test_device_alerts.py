"""Device events from a real driver and emulator over a pty: an Avalon unplugged and plugged back
in, and running hot, become `device_unplugged`, `device_back` and `over_temperature` for the alert
sinks (docs/alerts.md §1); the watcher reads the same snapshots as every front end."""

import time

from miner.core import events as ev
from miner.core.engine import Miner
from miner.devices.base import DeviceState
from miner.frontends.view import MinerView
from miner.frontends.watch import EventWatcher, Thresholds
from miner.sources.sandbox import SandboxSource
from tests.devices.test_avalon_device import Rig, make_job


def test_an_unplugged_and_replugged_device_and_its_temperature_become_events(tmp_path):
    r = Rig("avalon7", link=tmp_path / "auc")
    try:
        view = MinerView(Miner(SandboxSource(), [r.device], r.dispatcher, status_interval=0))
        watcher = EventWatcher(Thresholds(temperature=1.0))  # any reported temperature is "hot"
        seen: list[ev.Event] = []

        def look_until(predicate, what: str, timeout: float = 20.0) -> None:
            deadline = time.monotonic() + timeout
            while not predicate():
                seen.extend(watcher.step(view.summary(), view.device_snapshots(), [], time.monotonic()))
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what}: {[(e.kind, e.subject) for e in seen]}")
                time.sleep(0.05)

        look_until(lambda: True, "the baseline")
        r.dispatcher.set_job(make_job())
        r.device.start()
        r.wait_nonces(2)
        look_until(lambda: r.device.stats.state is DeviceState.ALIVE, "the device coming up")
        assert not any(e.kind == ev.DEVICE_BACK for e in seen)  # starting up is not coming back
        if r.device.stats.temperature is not None:
            look_until(lambda: any(e.kind == ev.OVER_TEMPERATURE for e in seen), "over temperature")
        r.emulator.unplug()
        look_until(lambda: any(e.kind == ev.DEVICE_UNPLUGGED for e in seen), "the unplug")
        assert r.device.stats.state is DeviceState.NO_DEVICE
        r.emulator.replug()
        before = sum(e.kind == ev.DEVICE_BACK for e in seen)
        look_until(lambda: sum(e.kind == ev.DEVICE_BACK for e in seen) > before, "the device back")
        kinds = [e.kind for e in seen if e.subject == "AV0"]
        assert kinds.index(ev.DEVICE_UNPLUGGED) < len(kinds) - 1 - kinds[::-1].index(ev.DEVICE_BACK)
        unplugged = next(e for e in seen if e.kind == ev.DEVICE_UNPLUGGED)
        assert unplugged.fields["previous"] == "Alive" and "AV0" in unplugged.message
    finally:
        r.close()
