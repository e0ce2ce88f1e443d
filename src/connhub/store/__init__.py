"""Persistence: SQLAlchemy Core tables, Alembic migrations and the connection repository."""
