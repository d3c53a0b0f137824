"""Pieces shared by the agent, monitor-api and monitor-scorer."""
