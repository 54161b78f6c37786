"""`miner serve`: a Stratum v1 server for the LAN (docs/serve.md)."""
