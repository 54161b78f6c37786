"""Device drivers, one package per protocol family: protocol.py (pure codec), driver.py, emulator.py."""
