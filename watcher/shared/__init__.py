"""What every layer may use: structured log fields, Prometheus metrics, secret redaction,
waiting helpers and listening sockets."""
