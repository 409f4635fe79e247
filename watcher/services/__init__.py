"""Services: the product's work, written against ports and the ledger. follower (chain ->
ledger), provisioner (jobs -> cloud), replay (backfill), notify (the outbox -> MQTT),
monitoring (gauges and the money invariant, checked in production)."""
