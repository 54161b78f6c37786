"""What every driver package shares: the pty emulation kit (and CRCs, bit helpers, USB ids)."""
