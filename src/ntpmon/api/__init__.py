"""ntpmon api."""
