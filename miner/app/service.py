"""Running as a service (docs/alerts.md §4): systemd's notify protocol, the unit `miner
systemd-unit` prints, and the log outputs (`--log-file` with rotation, `--syslog`).

sd_notify is a datagram of `KEY=VALUE` lines sent to the socket named by $NOTIFY_SOCKET (a path,
or an abstract socket when it starts with "@"), as systemd's sd_notify(3) describes; the watchdog
interval is $WATCHDOG_USEC (microseconds; only for us when $WATCHDOG_PID is unset or ours), and the
miner pings at half of it from the event loop, so a hung loop stops the pings and systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import shlex
import socket
import sys
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
WATCHDOG_SEC = 60
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# ------------------------------------------------------------------------------------ sd_notify
class Notifier:
    """sd_notify(3) without libsystemd; does nothing when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog = int(usec) / 1e6
        self.sent: list[str] = []

    @property
    def enabled(self) -> bool:
        return bool(self.address) and self.address[0] in "/@"

    def notify(self, **fields: object) -> bool:
        """notify(READY=1, STATUS="...") -> True when the datagram was sent."""
        if not self.enabled:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), address)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        self.sent.append(message)
        return True

    async def keep_alive(self, status: Callable[[], str] | None = None) -> None:
        """WATCHDOG=1 at half the interval (and STATUS=, when given) until cancelled."""
        if not self.enabled or self.watchdog is None:
            return
        while True:
            fields: dict[str, object] = {"WATCHDOG": 1}
            if status is not None:
                with contextlib.suppress(Exception):
                    fields["STATUS"] = status()
            self.notify(**fields)
            await asyncio.sleep(self.watchdog / 2)


# ------------------------------------------------------------------------------------ the unit
def unit_escape(argument: str) -> str:
    """One ExecStart argument: shell-style quoting, with % and $ doubled (systemd.unit(5) specifiers,
    systemd.service(5) variable expansion)."""
    return shlex.quote(argument).replace("%", "%%").replace("$", "$$")


def systemd_unit(argv: list[str], user: bool = False, python: str = sys.executable,
                 watchdog: int = WATCHDOG_SEC) -> str:
    """A unit that runs `miner ARGV` as a notify service with a watchdog."""
    command = " ".join(unit_escape(a) for a in [python, "-m", "miner", "--no-tui", *argv])
    lines = [
        "# miner systemd-unit: save as " + ("~/.config/systemd/user/miner.service, then "
                                              "systemctl --user enable --now miner" if user else
                                              "/etc/systemd/system/miner.service, then "
                                              "systemctl enable --now miner"),
        "[Unit]",
        "Description=SHA-256d miner",
        "Documentation=man:systemd.service(5)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={command}",
        f"WatchdogSec={watchdog}",
        "Restart=on-failure",
        "RestartSec=10",
        "TimeoutStopSec=15",
        "KillMode=mixed",
    ]
    if not user:
        lines += ["SupplementaryGroups=dialout", "NoNewPrivileges=yes", "ProtectSystem=full", "PrivateTmp=yes"]
    lines += ["", "[Install]", f"WantedBy={'default.target' if user else 'multi-user.target'}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ logging
def add_log_outputs(log_file: str | None, use_syslog: bool) -> list[logging.Handler]:
    """Add the file and syslog handlers to the root logger at its level; ValueError (one line) when
    the log file cannot be opened. A missing /dev/log is a warning: the miner runs without it."""
    root = logging.getLogger()
    added: list[logging.Handler] = []
    if log_file:
        try:
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--log-file {log_file}: {exc.strerror or exc}") from None
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        added.append(handler)
    if use_syslog:
        address = "/dev/log" if os.path.exists("/dev/log") else None
        if address is None:
            log.warning("--syslog: no /dev/log here; logging to stderr only")
        else:
            handler = logging.handlers.SysLogHandler(address=address,
                                                     facility=logging.handlers.SysLogHandler.LOG_DAEMON)
            handler.ident = "miner: "
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            added.append(handler)
    for handler in added:
        root.addHandler(handler)
    return added
