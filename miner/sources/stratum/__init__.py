"""Stratum v1: a sans-I/O protocol core (protocol.py) and its asyncio shell (client.py)."""
