"""Prometheus metrics (prometheus-client). Defined once here; served by `watcher run`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

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
PAYMENTS_CTK = Counter(
    "watcher_payments_ctk_total",
    "CTK paid into the burn address and recorded (a float, for dashboards: the ledger is exact).",
)
CHAIN_LAG = Gauge("watcher_chain_lag_blocks", "Blocks between the node's head and the cursor.")
ORDERS = Gauge("watcher_orders", "Orders in the ledger, by state.", ["state"])
JOBS_PENDING = Gauge("watcher_provision_jobs_pending", "Provisioning jobs queued or claimed.")
OLDEST_JOB_AGE = Gauge(
    "watcher_provision_oldest_job_age_seconds",
    "Age of the oldest pending provisioning job (0 when none).",
)
JOBS_RETRYING = Gauge(
    "watcher_provision_jobs_retrying",
    "Pending provisioning jobs whose last attempt failed (waiting to be retried).",
)
JOBS_FAILING = Gauge(
    "watcher_provision_jobs_failing",
    "Retrying provisioning jobs that have been tried at least 3 times (keep failing).",
)
JOBS_OVERDUE = Gauge(
    "watcher_provision_jobs_overdue",
    "Pending provisioning jobs older than 10 minutes: paid orders stuck without an instance.",
)
LEASES = Gauge("watcher_leases", "Leases of orders that ran, by lease state.", ["state"])
LEASES_ENDING_SOON = Gauge(
    "watcher_leases_ending_within_hour",
    "Running leases whose paid time ends within the hour (auto-renew may still extend them).",
)
LEASE_JOBS_OVERDUE = Gauge(
    "watcher_lease_jobs_overdue",
    "Stop, start or terminate jobs pending for more than 10 minutes (a lease past its end "
    "whose resource still runs, or an extended one not started).",
)
PROVISIONING_SECONDS = Histogram(
    "watcher_provisioning_seconds",
    "From the block that carried the payment to the order's instance running (payments "
    "followed live; block times have a resolution of one second).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
ORDER_TRANSITIONS = Counter(
    "watcher_order_transitions_total", "Order state changes recorded.", ["state"]
)
AWS_ERRORS = Counter(
    "watcher_aws_errors_total", "Failed EC2 calls, by kind and code.", ["kind", "code"]
)
BUILD = Info("watcher_build", "The running watcher.")
MQTT_PUBLISHED = Counter("watcher_mqtt_events_published_total", "Order events published to MQTT.")
MQTT_BACKLOG = Gauge("watcher_mqtt_events_backlog", "Order events waiting in the outbox.")
MQTT_RECONNECTS = Counter("watcher_mqtt_reconnects_total", "MQTT connections lost or refused.")
DATABASE_ERRORS = Counter(
    "watcher_database_errors_total",
    "Ledger database errors met by the service's tasks, by kind (transient ones were retried).",
    ["kind"],
)

CLOUD_DIFFERENCES = Gauge(
    "watcher_cloud_differences",
    "Differences between orders and the cloud's tagged resources at the last sweep "
    "(resource_missing: an order that holds a resource has none; resource_ended: it was "
    "terminated outside the watcher; resource_duplicate, resource_without_order, ...).",
    ["kind"],
)
CLOUD_SWEEPS = Counter(
    "watcher_cloud_sweeps_total",
    "Sweeps comparing orders with the cloud, by outcome (done, or error: no conclusion).",
    ["outcome"],
)
ORDERS_UNFUNDED = Gauge(
    "watcher_orders_unfunded",
    "Orders whose payment a reorg orphaned after provisioning had started, not failed: "
    "their instance may run unpaid until the payment is mined again (see watcher orders).",
)
MONEY_IMBALANCE = Gauge(
    "watcher_money_imbalance",
    "Paid minus (credit + spent), in CTK base units, per chain: every paid unit must be in a "
    "credit balance or an order, so anything but 0 is a bug or a hand edit (watcher audit "
    "names the payer).",
    ["chain_id"],
)
