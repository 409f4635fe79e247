"""Adapters: the outside world behind the ports. chain/ (JSON-RPC for reading, web3 for
sending), cloud/ (EC2 through aioboto3, and the fake provider), ledger/ (the SQL store:
payments, credit, orders, jobs, the events outbox)."""
