"""Long history in ClickHouse (the exporter) and a bounded ``log_scores`` in MySQL (retention)."""
