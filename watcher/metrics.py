"""Prometheus metrics (prometheus-client). Defined once here; served by `watcher run`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PAYMENTS_RECORDED = Counter(
    "watcher_payments_recorded_total", "Payments into the burn address recorded in the ledger."
)
PAYMENT_DUPLICATES = Counter(
    "watcher_payment_duplicates_total",
    "Payment logs seen again and skipped (already in the ledger).",
)
ORDERS_CREATED = Counter("watcher_orders_created_total", "Orders created from paid credit.")
CHAIN_HEAD = Gauge("watcher_chain_head_block", "Newest block number the node reported.")
CURSOR_BLOCK = Gauge("watcher_cursor_block", "Last block whose payments are all in the ledger.")
REORGS = Counter("watcher_reorgs_total", "Chain reorganisations that undid processed blocks.")
REORG_DEPTH = Histogram(
    "watcher_reorg_depth_blocks",
    "Blocks undone per reorg.",
    buckets=(1, 2, 3, 5, 8, 13, 21, 34, 64, 128, 256),
)
DEEP_REORGS = Counter(
    "watcher_deep_reorgs_total", "Reorgs deeper than the configured confirmations (critical)."
)
ORDERS_FLAGGED = Counter(
    "watcher_orders_reorg_flagged_total",
    "Orders whose payment a reorg orphaned after provisioning had started (needs an operator).",
)
RPC_ERRORS = Counter("watcher_rpc_errors_total", "Failed RPC calls, by kind.", ["kind"])
LOG_RANGE_SPLITS = Counter(
    "watcher_log_range_splits_total", "eth_getLogs ranges a provider refused and that were split."
)
WS_RECONNECTS = Counter(
    "watcher_ws_reconnects_total", "WebSocket newHeads subscriptions lost and retried."
)
