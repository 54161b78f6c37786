"""Devices: the interface every driver implements, the serial-port thread, the CPU miner, and the
manager that finds, health-checks and hot-plugs them; every device reports `Nonce`s for `Work`."""
