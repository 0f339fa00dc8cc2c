"""Lease store implementations: in memory, SQLite and PostgreSQL."""
