"""Front ends that read the running miner and send it commands: the cgminer API, REST and metrics,
the terminal view, and the statistics that persist across restarts."""
