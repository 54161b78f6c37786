"""A SHA-256d Bitcoin miner: job sources, a native sha256d core, devices, share checking."""

__version__ = "0.1.0"
USER_AGENT = f"pyminer/{__version__}"
