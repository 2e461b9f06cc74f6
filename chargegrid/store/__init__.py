"""Persistence adapter: SQLAlchemy 2 (async) over SQLite (WAL, the default) or PostgreSQL."""
