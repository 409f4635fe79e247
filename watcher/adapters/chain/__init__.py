"""Adapters to an EVM chain over JSON-RPC (web3.py's AsyncWeb3)."""
