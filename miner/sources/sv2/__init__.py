"""Stratum V2: the Noise transport, the binary codec, the session rules and the asyncio shell (docs/sv2.md)."""
