"""Scheduled health checks of every stored connection, their history, and alerts (issue 18)."""
