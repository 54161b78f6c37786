"""Solo mining against a Bitcoin node: JSON-RPC client, payout addresses, block templates."""
