"""ntpmon scorer."""
