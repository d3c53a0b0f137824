"""The monitor's measurement of one server: probe, classify, pick the best sample, report."""
