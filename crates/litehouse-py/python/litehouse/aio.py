"""The asyncio face of litehouse: :class:`AsyncDatabase`.

The rule: every method of :class:`~litehouse.Database` exists on :class:`AsyncDatabase` under
the same name, as a coroutine. Statements go to the engine's own async path (the event loop
never waits for SQLite); ``transaction`` runs its function in a worker thread, since the
function itself is ordinary blocking code.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterable, TypeVar

from ._litehouse import Database, Transaction

T = TypeVar("T")


class AsyncDatabase:
    """A :class:`~litehouse.Database` for asyncio code: the same methods, awaited."""

    def __init__(self, path: str, **options: Any) -> None:
        self._db = Database(path, **options)

    @classmethod
    def memory(cls, name: str, **options: Any) -> "AsyncDatabase":
        """Opens the in-memory database ``name``."""
        self = cls.__new__(cls)
        self._db = Database.memory(name, **options)
        return self

    @classmethod
    def wrap(cls, db: Database) -> "AsyncDatabase":
        """The async face of an open :class:`~litehouse.Database` (both share it)."""
        self = cls.__new__(cls)
        self._db = db
        return self

    @property
    def sync(self) -> Database:
        """The blocking :class:`~litehouse.Database` behind this one."""
        return self._db

    @property
    def location(self) -> str:
        return self._db.location

    @property
    def closed(self) -> bool:
        return self._db.closed

    async def execute(self, sql: str, params: Any = None) -> int:
        return await self._db.execute_async(sql, params)

    async def execute_many(self, sql: str, seq_of_params: Iterable[Any]) -> int:
        return await self._db.execute_many_async(sql, seq_of_params)

    async def query(self, sql: str, params: Any = None, *, tuples: bool = False) -> list[Any]:
        return await self._db.query_async(sql, params, tuples=tuples)

    async def query_row(self, sql: str, params: Any = None, *, tuples: bool = False) -> Any:
        return await self._db.query_row_async(sql, params, tuples=tuples)

    async def query_optional(self, sql: str, params: Any = None, *, tuples: bool = False) -> Any:
        return await self._db.query_optional_async(sql, params, tuples=tuples)

    async def transaction(self, function: Callable[[Transaction], T]) -> T:
        return await asyncio.to_thread(self._db.transaction, function)

    async def script(self, sql: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._db.script, sql)

    async def pragma_update(self, name: str, value: str) -> str | None:
        return await asyncio.to_thread(self._db.pragma_update, name, value)

    async def vacuum(self) -> None:
        await asyncio.to_thread(self._db.vacuum)

    async def analyze(self) -> None:
        await asyncio.to_thread(self._db.analyze)

    async def optimize(self) -> None:
        await asyncio.to_thread(self._db.optimize)

    async def checkpoint(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._db.checkpoint)

    async def integrity_check(self) -> list[str]:
        return await asyncio.to_thread(self._db.integrity_check)

    async def backup(self, path: str, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        return await asyncio.to_thread(self._db.backup, path, progress)

    def stats(self) -> dict[str, Any]:
        """Counters and latencies (no I/O, so not a coroutine)."""
        return self._db.stats()

    async def close(self) -> None:
        await self._db.close_async()

    async def __aenter__(self) -> "AsyncDatabase":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<litehouse.AsyncDatabase {self._db.location}>"
