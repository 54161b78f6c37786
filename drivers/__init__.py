"""Device drivers, one package per protocol family: its codec modules (pure, no I/O; `protocol.py`
re-exports them), driver.py and emulator.py. kit/ holds what they share: CRCs, bit helpers, USB ids
and the pty emulation kit."""
