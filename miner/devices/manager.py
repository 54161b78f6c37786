"""Finds devices, keeps the list current as sticks come and go, and looks after their health.

Drivers register in the `miner.drivers` entry point group (a third-party package can add one);
each declares the USB ids it claims. Detection matches pyserial's `list_ports` against them;
`--device DRIVER:PORT` names a port outright. A rescan every `hotplug` seconds adds newly plugged
sticks and marks vanished ones NoDevice without touching the others. A device that stops
producing valid nonces, or produces mostly bad ones, is re-initialised once and then disabled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points

from miner.devices.base import (
    Device,
    DeviceError,
    DeviceSpec,
    DeviceState,
    Driver,
    NonceSink,
    check_options,
    options_read,
)
from miner.devices.work_source import WorkSource

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "miner.drivers"


def load_drivers() -> dict[str, Driver]:
    """Every registered driver by its name and each alias."""
    found: dict[str, Driver] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            driver = ep.load()
        except Exception as exc:  # a broken third-party driver must not stop the miner
            log.warning("driver %s (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        for name in (driver.name, *driver.aliases):
            found.setdefault(name.lower(), driver)
    return found


@dataclass(frozen=True)
class PortInfo:
    """One serial port as list_ports describes it."""

    device: str
    vid: int | None = None
    pid: int | None = None
    product: str | None = None
    serial_number: str | None = None
    description: str = ""
    location: str = ""  # USB "BUS-PORT[.PORT]:CONFIG.INTERFACE" (pyserial's location), "" when unknown


def list_serial_ports() -> list[PortInfo]:
    from serial.tools import list_ports

    return [PortInfo(p.device, p.vid, p.pid, p.product, p.serial_number, p.description or "", p.location or "")
            for p in list_ports.comports()]


def companion_port(port: PortInfo, ports: Iterable[PortInfo]) -> PortInfo | None:
    """The next serial interface of the same USB device as `port` (a board with a control port and a
    data port, such as bitaxe-raw's: the first interface controls, the next carries the chain)."""
    if ":" not in port.location:
        return None
    device, interface = port.location.rsplit(":", 1)
    later = [p for p in ports if p.location.startswith(device + ":") and _interface_key(p.location) >
             _interface_key(port.location)]
    return min(later, key=lambda p: _interface_key(p.location)) if later else None


def first_interface(port: PortInfo, ports: Iterable[PortInfo]) -> bool:
    """Whether `port` is the lowest-numbered serial interface of its USB device."""
    if ":" not in port.location:
        return True
    device = port.location.rsplit(":", 1)[0]
    return all(_interface_key(p.location) >= _interface_key(port.location) for p in ports
               if p.location.startswith(device + ":"))


def _interface_key(location: str) -> tuple[int, ...]:
    tail = location.rsplit(":", 1)[-1]
    return tuple(int(x) for x in tail.split(".") if x.isdigit())


def claim(port: PortInfo, drivers: Iterable[Driver]) -> tuple[Driver, str | None] | None:
    """The driver (and model) that claims a port by its USB id, if any. Ids with a product
    string are more specific, so they win over a bare VID:PID another driver claims."""
    best: tuple[Driver, str | None] | None = None
    for driver in drivers:
        for usb_id in driver.usb_ids:
            if usb_id.matches(port.vid, port.pid, port.product):
                if usb_id.product is not None:
                    return driver, usb_id.model
                best = best or (driver, usb_id.model)
    return best


@dataclass
class HealthPolicy:
    """When a device counts as sick: no valid nonce for `silent_intervals` expected nonce
    intervals (and at least `min_silence` seconds), or `hw_burst` hardware errors in a row of
    checks without a valid nonce. A sick device is re-initialised; if still sick after
    `grace` more seconds it is disabled."""

    silent_intervals: float = 20.0
    min_silence: float = 60.0
    hw_burst: int = 20
    grace: float = 60.0


class DeviceManager:
    def __init__(self, work: WorkSource, sink: NonceSink, specs: Iterable[DeviceSpec] = (), *,
                 drivers: dict[str, Driver] | None = None, hotplug: float = 5.0, scan_usb: bool = True,
                 cpu: bool | None = None, cpu_factory: Callable[[], Device] | None = None,
                 list_ports: Callable[[], list[PortInfo]] = list_serial_ports,
                 health: HealthPolicy | None = None):
        self._work = work
        self._sink = sink
        self.specs = list(specs)
        self.drivers = load_drivers() if drivers is None else drivers
        self.hotplug = hotplug
        self.scan_usb = scan_usb
        self.cpu = cpu  # None: the CPU mines only when no board is found
        self._cpu_factory = cpu_factory
        self._list_ports = list_ports
        self.health = health or HealthPolicy()
        self.devices: list[Device] = []
        self._auto: dict[str, Device] = {}  # detected devices by port path
        self._counts: dict[str, int] = {}
        self._hw_seen: dict[str, int] = {}
        self._sick_since: dict[str, float] = {}
        self._listeners: list[Callable[[Device], None]] = []
        self._explicit_ports: set[str] = set()
        for spec in self.specs:
            if spec.driver not in self.drivers:
                known = ", ".join(sorted(self.drivers)) or "none"
                raise DeviceError(f"--device {spec.driver}: no such driver (known: {known})")

    def add_listener(self, listener: Callable[[Device], None]) -> None:
        """Called with every device added after `setup()` (hot-plugged)."""
        self._listeners.append(listener)

    def by_name(self, name: str) -> Device | None:
        for device in self.devices:
            if device.name == name:
                return device
        return None

    # ------------------------------------------------------------ building the list
    def _create(self, driver: Driver, spec: DeviceSpec) -> Device:
        index = self._counts.get(driver.name, 0)
        self._counts[driver.name] = index + 1
        with options_read() as asked:
            device = driver.create(spec, self._work, self._sink, index)
        check_options(spec, asked)  # a typo such as frequncy=300 is not silently ignored
        return device

    def setup(self) -> list[Device]:
        """Explicit devices, then detected ones, then the CPU if it is wanted."""
        explicit_ports = set()
        for spec in self.specs:
            driver = self.drivers[spec.driver]
            if driver.name == "cpu":
                continue
            self.devices.append(self._create(driver, spec))
            if spec.port:
                explicit_ports.add(spec.port)
        self._explicit_ports = explicit_ports
        if self.scan_usb:
            self.devices.extend(self.rescan())
        boards = [d for d in self.devices if d.driver != "cpu"]
        want_cpu = self.cpu if self.cpu is not None else not boards
        if any(self.drivers[s.driver].name == "cpu" for s in self.specs):
            want_cpu = self.cpu is not False
        if want_cpu:
            cpu_spec = next((s for s in self.specs if self.drivers[s.driver].name == "cpu"), DeviceSpec("cpu"))
            if self._cpu_factory is not None:
                device = self._cpu_factory()
            else:
                from miner.devices.cpu import DRIVER as CPU_DRIVER  # the CPU is always there

                device = self._create(self.drivers.get("cpu", CPU_DRIVER), cpu_spec)
            self.devices.append(device)
        if not self.devices:
            raise DeviceError("no devices: no board found and the CPU is disabled (--no-cpu)")
        return self.devices

    def rescan(self) -> list[Device]:
        """Devices for ports that appeared since the last scan (not started). Vanished ports'
        devices are marked NoDevice; a port that comes back gets its old device (and name) back."""
        try:
            ports = self._list_ports()
        except Exception as exc:  # list_ports reads sysfs; a racing unplug can fail it
            log.debug("port scan failed: %s", exc)
            return []
        present = {p.device for p in ports}
        new: list[Device] = []
        for port in ports:
            if port.device in self._explicit_ports:
                continue
            known = self._auto.get(port.device)
            if known is not None:
                if known.stats.state is DeviceState.NO_DEVICE and known.enabled:
                    log.info("%s: %s is back", known.name, port.device)
                    known.start()
                continue
            claimed = claim(port, self.drivers.values())
            if claimed is None:
                continue
            driver, model = claimed
            options = {"model": model} if model else {}
            if driver.companion_option:
                # Two ports, one device: created for the first interface, with the next as an option.
                companion = companion_port(port, ports)
                if not first_interface(port, ports) or companion is None:
                    continue
                options[driver.companion_option] = companion.device
            device = self._create(driver, DeviceSpec(driver.name, port.device, options))
            if port.serial_number:
                device.serial_number = port.serial_number
            log.info("found %s on %s (%s)", device.name, port.device, port.product or port.description)
            self._auto[port.device] = device
            new.append(device)
        for path, device in self._auto.items():
            if path not in present and device.stats.state is not DeviceState.NO_DEVICE:
                device.stats.set_state(DeviceState.NO_DEVICE, f"{path} unplugged")
                device.stop(timeout=1.0)
                device.stats.state = DeviceState.NO_DEVICE
        return new

    # ------------------------------------------------------------ health
    def check_health(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        policy = self.health
        for device in self.devices:
            stats = device.stats
            if not device.enabled or stats.state not in (DeviceState.ALIVE, DeviceState.SICK):
                continue
            hw_now = stats.hw_errors
            hw_new = hw_now - self._hw_seen.get(device.name, hw_now)
            self._hw_seen[device.name] = hw_now
            sick_since = self._sick_since.get(device.name)
            if sick_since is not None:
                # Only a valid nonce after the re-init counts as recovery; a device that merely
                # answered its init again but still hashes nothing stays sick.
                if (stats.last_valid_at or 0) > sick_since and hw_new < policy.hw_burst:
                    self._sick_since.pop(device.name)
                    device.stats.set_state(DeviceState.ALIVE, "recovered")
                elif now - max(sick_since, stats.alive_since) > policy.grace:
                    # The grace runs from the re-init's success: a device that took a while to
                    # answer its identification again (serialport retries it) gets its full grace.
                    log.error("%s: still sick %.0f s after re-init; disabled. Re-enable it with the API "
                              "(ascenable|N) or restart the miner", device.name, now - sick_since)
                    self._sick_since.pop(device.name)
                    device.enabled = False
                    device.stop(timeout=1.0)
                    stats.state = DeviceState.DISABLED
                continue
            last_good = max(stats.last_valid_at or 0, stats.alive_since)
            interval = device.expected_nonce_interval()
            silent = interval is not None and now - last_good > max(policy.silent_intervals * interval,
                                                                   policy.min_silence)
            erring = hw_new >= policy.hw_burst and (stats.last_valid_at or 0) < now - self.hotplug
            if silent or erring:
                why = (f"no valid nonce for {now - last_good:.0f} s" if silent
                       else f"{hw_new} hardware errors and no valid nonce")
                if erring and device.difficulty == 1.0 and (device.port or "").startswith("/dev/pts/"):
                    # a pty is an emulator: one started with --difficulty D reports nonces no real chip would
                    why += (f" (an emulator started with --difficulty D needs the same here: --device "
                            f"{device.driver}:{device.port},difficulty=D)")
                self._sick_since[device.name] = now
                device.stats.set_state(DeviceState.SICK, why + "; re-initialising")
                device.reinitialise()

    async def run(self) -> None:
        """Rescan for hot-plugged devices and check health every `hotplug` seconds."""
        while True:
            await asyncio.sleep(self.hotplug)
            if self.scan_usb:
                for device in await asyncio.to_thread(self.rescan):
                    self.devices.append(device)
                    device.start()
                    for listener in self._listeners:
                        listener(device)
            self.check_health()

    def start(self) -> None:
        for device in self.devices:
            if device.enabled:
                device.start()

    def stop(self) -> None:
        for device in self.devices:
            device.stop()
