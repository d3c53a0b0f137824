"""ntpmon selector."""
