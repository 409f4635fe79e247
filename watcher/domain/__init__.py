"""The domain: values and rules with no I/O (payments, pricing, plans and resource kinds,
orders, jobs, log ranges, backoff, reconciliation). Deterministic and unit-tested in
microseconds; it imports nothing else from the package."""
