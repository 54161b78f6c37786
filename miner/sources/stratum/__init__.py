"""Stratum v1: the wire codec (protocol.py), the session rules without I/O (session.py), the asyncio
connection around them (connection.py), failover between pools (failover.py) and pool URLs and
settings (url.py)."""
