"""The pure core: values and rules with no I/O (payments, pricing, orders, log ranges,
backoff). Everything here is deterministic and unit-tested in microseconds."""
