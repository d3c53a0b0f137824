"""ntpmon agent."""
