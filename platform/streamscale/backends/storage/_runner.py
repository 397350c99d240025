"""Blocking database work, run from trio without blocking it: the base of `SqlStore`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import trio
from sqlalchemy import Connection, Engine, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from . import _rows
from ._engine import SINGLE_READ_OPTION, WRITE_OPTION, is_sqlite_memory
from ._sealing import Sealer, SecretsKeyError

_ROWS_PER_INSERT = 500  # rows a statement: 24 parameters a rollup row, well under 32,766

T = TypeVar("T")


class SqlRunner:
    """Runs blocking SQLAlchemy work from trio: in worker threads, writes queued on SQLite.

    SQLite allows one writer at a time anyway, so this process queues its writes on a
    trio.Lock instead of parking threads in the busy handler; the busy timeout then only
    covers other processes. IntegrityError leaves as Conflict or NotFound.
    """

    def __init__(self, engine: Engine, *, threads: int, sealer: Sealer | None = None) -> None:
        self._engine = engine
        self._sealer_or_none = sealer
        # Each read is one statement, consistent on its own: skip BEGIN and ROLLBACK
        # (two round trips on PostgreSQL, one statement fewer on SQLite).
        self._read_engine = (
            engine.execution_options(**{SINGLE_READ_OPTION: True})
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._limiter = trio.CapacityLimiter(threads)
        self._sqlite = engine.dialect.name == "sqlite"
        self._write_lock = trio.Lock() if self._sqlite else None
        self._serial = is_sqlite_memory(engine.url)  # one shared connection
        self._insert = sqlite.insert if self._sqlite else postgresql.insert

    @property
    def engine(self) -> Engine:
        """For tests and tools; services use the methods."""
        return self._engine

    @property
    def _sealer(self) -> Sealer:
        """What seals signing keys; a store opened without a secrets key has none."""
        if self._sealer_or_none is None:
            raise SecretsKeyError("this store was opened without a secrets key: it cannot "
                                  "read or write signing keys")
        return self._sealer_or_none

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await trio.to_thread.run_sync(self._engine.dispose, limiter=self._limiter)

    async def _call(self, work: Callable[[], T], *, write: bool) -> T:
        lock = self._write_lock if write or self._serial else None
        try:
            if lock is None:
                return await trio.to_thread.run_sync(work, limiter=self._limiter)
            async with lock:
                return await trio.to_thread.run_sync(work, limiter=self._limiter)
        except IntegrityError as exc:
            mapped = _rows.map_integrity_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        def work() -> T:
            with self._read_engine.connect() as conn:
                return fn(conn)

        return await self._call(work, write=False)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        def work() -> T:
            with self._write_engine.begin() as conn:
                return fn(conn)

        return await self._call(work, write=True)

    async def _insert_new(self, table: Table, rows: Sequence[dict[str, Any]],
                          keys: Sequence[str]) -> None:
        """Insert `rows` in one transaction, `_ROWS_PER_INSERT` a statement (SQLite takes
        at most 32,766 parameters); a row whose `keys` are already stored is kept as it
        is, so a retried write never fails or doubles."""
        if not rows:
            return

        def work(conn: Connection) -> None:
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                conn.execute(self._insert(table).values(list(rows[i:i + _ROWS_PER_INSERT]))
                             .on_conflict_do_nothing(index_elements=list(keys)))

        await self._write(work)

    async def _one(self, stmt: Select[Any], convert: Callable[[Any], T]) -> T | None:
        row = await self._read(lambda conn: conn.execute(stmt).one_or_none())
        return None if row is None else convert(row)

    async def _all(self, stmt: Select[Any]) -> Sequence[Any]:
        return await self._read(lambda conn: conn.execute(stmt).all())
