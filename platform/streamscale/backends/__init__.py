"""Backends behind small interfaces: storage (SQLite | PostgreSQL) and, later, the bus."""
