"""Front ends that read the running miner and send it commands: the cgminer API, REST and metrics."""
