"""The SQL ledger: payments, credit, orders and provisioning jobs (SQLAlchemy 2, async)."""
