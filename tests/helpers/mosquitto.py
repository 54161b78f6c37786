"""A real MQTT broker for tests: Debian's mosquitto on a free 127.0.0.1 port, with its own config
file and password file in a temporary folder, started and stopped by the test (never the system
service)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, user: str = "miner", password: str = "hunter2-mqtt"):
        self.user, self.password = user, password
        self.folder = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        passwords = self.folder / "passwords"
        subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwords), user, password], check=True,
                       capture_output=True)
        passwords.chmod(0o600)
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
                               f"persistence false\nlog_dest file {self.folder / 'log'}\nlog_type all\n"
                               # as root it would switch to the mosquitto user, who cannot read this folder
                               + ("user root\n" if os.geteuid() == 0 else ""))

    @staticmethod
    def available() -> bool:
        return Path(MOSQUITTO).exists() and Path(MOSQUITTO_PASSWD).exists()

    def start(self, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()[-500:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
