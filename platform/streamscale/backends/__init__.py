"""Backends behind small interfaces: storage (SQLite | PostgreSQL), bus (in-process | Redis)."""
