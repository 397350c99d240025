"""Backends behind small interfaces: storage (SQLite | PostgreSQL) and the bus (in-process | Redis)."""
