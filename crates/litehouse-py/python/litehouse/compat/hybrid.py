"""The "SQLite hybrid strategy" template's API on litehouse.

Replace ``from sqlite_hybrid import ...`` with ``from litehouse.compat.hybrid import ...``:
``with_db_retry``, ``execute_with_retry``, ``is_lock_error``, ``DatabaseBusyError``,
``DatabaseLockMetrics``, ``WriteBufferCache`` + ``BufferConfig``, ``LogDatabase`` +
``DatabaseLogHandler`` keep the template's names, arguments and return shapes. The one change a
caller makes: ``WriteBufferCache`` takes a :class:`litehouse.Database` (or a path) where the
template took an SQLAlchemy session factory.

What is done right here, where the template loses or hangs:

- ``WriteBufferCache`` coalesces writes to one key in order: an upsert followed by an update
  keeps the upsert with the update merged in (the template keeps only the update, which does
  nothing when the row is not in the database yet), and upserts use ``INSERT ... ON CONFLICT DO
  UPDATE`` of the named columns (not ``INSERT OR REPLACE``, which resets the others).
- No write is lost: a failed flush keeps its rows and retries; ``stop()`` flushes everything,
  not one batch per table; a row the database refuses is kept in ``_litehouse_rejected`` with its
  error (``get_stats()["rejected"]``) and never blocks the others.
- Backpressure waits for room in a worker thread instead of flushing inline under a lock.
- ``LogDatabase`` never deadlocks (the template's hangs after 50 entries), works in memory,
  writes from any thread with or without an event loop, and ``DatabaseLogHandler`` never drops a
  record silently: a full queue is counted in ``get_log_stats()["dropped"]``.
- Names put in SQL are validated; values are always bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import enum
import functools
import inspect
import itertools
import logging
import os
import random
import threading
import time
from typing import Any, Awaitable, Callable, TypeVar

import litehouse

__all__ = [
    "with_db_retry",
    "execute_with_retry",
    "is_lock_error",
    "DatabaseBusyError",
    "DatabaseLockMetrics",
    "WriteBufferCache",
    "BufferConfig",
    "PendingWrite",
    "WriteOperation",
    "LogDatabase",
    "LogEntry",
    "DatabaseLogHandler",
]

T = TypeVar("T")
_log = logging.getLogger(__name__)
_LOCK_MESSAGES = ("database is locked", "database is busy", "sqlite_busy", "sqlite_locked", "cannot start a transaction within a transaction")


# -- retry -------------------------------------------------------------------------------------


class DatabaseBusyError(Exception):
    """Every retry found the database locked."""

    def __init__(self, message: str, attempts: int = 0, total_wait_time: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.total_wait_time = total_wait_time


def is_lock_error(exc: BaseException) -> bool:
    """True for a lock error: litehouse's ``BusyError``, or an ``OperationalError`` (sqlite3,
    SQLAlchemy) whose message says the database is locked or busy."""
    if isinstance(exc, litehouse.BusyError):
        return True
    if type(exc).__name__ != "OperationalError" and not isinstance(exc, litehouse.OperationalError):
        return False
    message = str(exc).lower()
    return any(text in message for text in _LOCK_MESSAGES)


class DatabaseLockMetrics:
    """Process-wide lock counters (classmethods, as in the template)."""

    _lock = threading.Lock()
    _lock_errors = 0
    _retries = 0
    _failures = 0
    _successes_after_retry = 0
    _last_lock_error: _dt.datetime | None = None
    _recent: list[float] = []

    @classmethod
    def record_lock_error(cls) -> None:
        with cls._lock:
            cls._lock_errors += 1
            cls._last_lock_error = _dt.datetime.now(_dt.timezone.utc)
            now = time.monotonic()
            cls._recent = [t for t in cls._recent if now - t < 300] + [now]

    @classmethod
    def record_retry(cls) -> None:
        with cls._lock:
            cls._retries += 1

    @classmethod
    def record_failure(cls) -> None:
        with cls._lock:
            cls._failures += 1

    @classmethod
    def record_success_after_retry(cls) -> None:
        with cls._lock:
            cls._successes_after_retry += 1

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls._lock_errors = cls._retries = cls._failures = cls._successes_after_retry = 0
            cls._last_lock_error = None
            cls._recent = []

    @classmethod
    def get_metrics(cls) -> dict[str, Any]:
        with cls._lock:
            now = time.monotonic()
            recent = [t for t in cls._recent if now - t < 300]
            return {
                "total_lock_errors": cls._lock_errors,
                "total_retries": cls._retries,
                "total_failures": cls._failures,
                "total_successes_after_retry": cls._successes_after_retry,
                "last_lock_error": cls._last_lock_error.isoformat() if cls._last_lock_error else None,
                "error_rate_per_minute": len(recent) / 5.0,
            }


def _delay(attempt: int, base_delay: float, max_delay: float, jitter: bool, error: BaseException) -> float:
    delay = min(base_delay * (2**attempt), max_delay)
    if jitter:
        delay *= random.uniform(0.75, 1.25)
    retry_after = getattr(error, "retry_after", None)
    return max(delay, retry_after) if isinstance(retry_after, (int, float)) else delay


def with_db_retry(max_retries: int = 3, base_delay: float = 0.1, max_delay: float = 2.0, jitter: bool = True) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Retries a sync or async function on lock errors, ``max_retries + 1`` attempts in all,
    with exponential backoff (and jitter); other errors are raised at once."""

    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await execute_with_retry(lambda: function(*args, **kwargs), max_retries, base_delay, max_delay, jitter)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            waited = 0.0
            for attempt in range(max_retries + 1):
                try:
                    result = function(*args, **kwargs)
                except Exception as error:
                    if not is_lock_error(error):
                        raise
                    DatabaseLockMetrics.record_lock_error()
                    if attempt == max_retries:
                        DatabaseLockMetrics.record_failure()
                        raise DatabaseBusyError(f"database stayed locked after {attempt + 1} attempts", attempt + 1, waited) from error
                    DatabaseLockMetrics.record_retry()
                    delay = _delay(attempt, base_delay, max_delay, jitter, error)
                    time.sleep(delay)
                    waited += delay
                else:
                    if attempt:
                        DatabaseLockMetrics.record_success_after_retry()
                    return result
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapper

    return decorate


async def execute_with_retry(operation: Callable[[], Any], max_retries: int = 3, base_delay: float = 0.1, max_delay: float = 2.0, jitter: bool = True) -> Any:
    """Calls ``operation()`` (awaiting its result if it is awaitable), retrying lock errors."""
    waited = 0.0
    for attempt in range(max_retries + 1):
        try:
            result = operation()
            if inspect.isawaitable(result):
                result = await result
        except Exception as error:
            if not is_lock_error(error):
                raise
            DatabaseLockMetrics.record_lock_error()
            if attempt == max_retries:
                DatabaseLockMetrics.record_failure()
                raise DatabaseBusyError(f"database stayed locked after {attempt + 1} attempts", attempt + 1, waited) from error
            DatabaseLockMetrics.record_retry()
            delay = _delay(attempt, base_delay, max_delay, jitter, error)
            await asyncio.sleep(delay)
            waited += delay
        else:
            if attempt:
                DatabaseLockMetrics.record_success_after_retry()
            return result
    raise AssertionError("unreachable")  # pragma: no cover


# -- write buffer ------------------------------------------------------------------------------


class WriteOperation(enum.Enum):
    UPSERT = "upsert"
    UPDATE = "update"
    DELETE = "delete"


@dataclasses.dataclass
class PendingWrite:
    operation: WriteOperation
    table: str
    data: dict[str, Any]
    key_columns: list[str]
    timestamp: _dt.datetime = dataclasses.field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))


@dataclasses.dataclass
class BufferConfig:
    max_buffer_size: int = 1000
    flush_interval_seconds: float = 5.0
    flush_batch_size: int = 100
    table_priorities: dict[str, int] = dataclasses.field(default_factory=dict)


_DELETED = object()


class WriteBufferCache:
    """Write-behind buffer: writes return at once and are flushed in batches."""

    def __init__(self, db: litehouse.Database | str, config: BufferConfig | None = None) -> None:
        self.config = config or BufferConfig()
        self._db = litehouse.Database(db) if isinstance(db, (str, os.PathLike)) else db
        priorities = sorted(self.config.table_priorities, key=lambda table: self.config.table_priorities[table])
        self._buffer = litehouse.WriteBuffer(
            self._db,
            max_buffer_size=self.config.max_buffer_size,
            flush_interval=self.config.flush_interval_seconds,
            flush_batch_size=self.config.flush_batch_size,
            table_priorities=priorities,
        )
        self._running = False
        self._total_buffered = 0
        # Read-your-writes: the newest buffered state per key, cleared once nothing is pending.
        self._shadow: dict[tuple[str, tuple[Any, ...]], Any] = {}
        self._shadow_lock = threading.Lock()

    async def start(self) -> None:
        """Starts periodic flushing (the flusher thread runs from construction; this marks the
        cache running, as the template's ``start`` does)."""
        self._running = True

    async def stop(self) -> None:
        """Flushes everything and stops. Rows the database refused are kept in
        ``_litehouse_rejected`` and logged."""
        self._running = False
        try:
            await asyncio.to_thread(self._buffer.stop)
        except litehouse.RejectedError as error:
            _log.warning("write buffer stopped; %s rows were refused and kept in _litehouse_rejected: %s", error.rows, error)

    @staticmethod
    def _key(data: dict[str, Any], key_columns: list[str]) -> tuple[Any, ...]:
        return tuple(data.get(column) for column in sorted(key_columns))

    def _remember(self, table: str, data: dict[str, Any], key_columns: list[str], operation: WriteOperation) -> None:
        key = (table, self._key(data, key_columns))
        with self._shadow_lock:
            current = self._shadow.get(key)
            if operation is WriteOperation.DELETE:
                self._shadow[key] = _DELETED
            elif operation is WriteOperation.UPSERT:
                self._shadow[key] = {**(current if isinstance(current, dict) else {}), **data}
            elif isinstance(current, dict):
                self._shadow[key] = {**current, **data}
            self._total_buffered += 1

    async def _write(self, method: str, table: str, row: dict[str, Any], key_columns: list[str] | None) -> None:
        args = (table, row) if key_columns is None else (table, row, key_columns)
        if method == "upsert":
            try:
                self._buffer.try_upsert(*args)
                return
            except litehouse.BufferFullError:
                pass
        # Waiting for room (or an update/delete, which may wait too) happens off the loop.
        await asyncio.to_thread(getattr(self._buffer, method), *args)

    async def buffer_upsert(self, table: str, data: dict[str, Any], key_columns: list[str]) -> None:
        await self._write("upsert", table, data, key_columns)
        self._remember(table, data, key_columns, WriteOperation.UPSERT)

    async def buffer_update(self, table: str, data: dict[str, Any], key_columns: list[str]) -> None:
        await self._write("update", table, data, key_columns)
        self._remember(table, data, key_columns, WriteOperation.UPDATE)

    async def buffer_delete(self, table: str, key_data: dict[str, Any], key_columns: list[str]) -> None:
        key = {column: key_data[column] for column in key_columns}
        await self._write("delete", table, key, None)
        self._remember(table, key, key_columns, WriteOperation.DELETE)

    async def force_flush(self) -> int:
        """Flushes everything pending now; returns the rows written."""
        return await asyncio.to_thread(self._buffer.force_flush)

    async def get_buffered_value(self, table: str, key_data: dict[str, Any], key_columns: list[str]) -> dict[str, Any] | None:
        """The buffered (not yet flushed) state of a key, or None when nothing is buffered for
        it or its last buffered write is a delete."""
        stats = self._buffer.stats()
        with self._shadow_lock:
            if stats["pending"] + stats["in_flight"] == 0:
                self._shadow.clear()
                return None
            value = self._shadow.get((table, self._key(key_data, key_columns)))
        return dict(value) if isinstance(value, dict) else None

    def get_stats(self) -> dict[str, Any]:
        stats = self._buffer.stats()
        return {
            "pending_count": stats["pending"] + stats["in_flight"],
            "total_buffered": self._total_buffered,
            "total_flushed": stats["flushed"],
            "flush_count": stats["flushes"],
            "failed_flushes": stats["failed_flushes"],
            "rejected": stats["rejected"],
            "last_error": stats["last_error"],
            "is_running": self._running,
            "pending_by_table": stats["pending_by_table"],
            "config": dataclasses.asdict(self.config),
        }


# -- log database --------------------------------------------------------------------------------


@dataclasses.dataclass
class LogEntry:
    timestamp: str
    level: str
    logger_name: str
    message: str
    extra_data: dict[str, Any] | None = None


_memory_logs = itertools.count()


class LogDatabase:
    """Log entries in their own SQLite database; ``log`` never waits."""

    def __init__(self, db_path: str | os.PathLike[str] | None = None, retention_days: int = 7, max_batch_size: int = 50, flush_interval_seconds: float = 2.0) -> None:
        self.db_path = None if db_path is None else str(db_path)
        self.retention_days = retention_days
        options = {
            "retention": retention_days * 86400.0 if retention_days else None,
            "batch_size": max_batch_size,
            "flush_interval": flush_interval_seconds,
        }
        if self.db_path is None:
            self._logs = litehouse.LogDatabase.memory(f"hybrid-logs-{os.getpid()}-{next(_memory_logs)}", **options)
        else:
            self._logs = litehouse.LogDatabase(self.db_path, **options)
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        """Writes what is queued and stops."""
        self._running = False
        try:
            await asyncio.to_thread(self._logs.shutdown)
        except litehouse.UnwrittenError as error:
            _log.error("log database stopped without writing %s entries: %s", error.entries, error)

    async def log(self, level: str, logger_name: str, message: str, extra: dict[str, Any] | None = None) -> None:
        self.log_nowait(level, logger_name, message, extra)

    def log_nowait(self, level: str, logger_name: str, message: str, extra: dict[str, Any] | None = None) -> bool:
        """``log`` without an event loop; returns False when the entry was dropped (counted)."""
        return self._logs.log(level, logger_name, message, extra)

    async def cleanup_old_logs(self) -> int:
        return await asyncio.to_thread(self._logs.purge)

    async def get_recent_logs(self, level: str | None = None, limit: int = 100) -> list[LogEntry]:
        await asyncio.to_thread(self._logs.flush)
        entries = await asyncio.to_thread(lambda: self._logs.query(min_level=level, limit=limit))
        return [
            LogEntry(
                timestamp=_dt.datetime.fromtimestamp(entry["unix_micros"] / 1e6, _dt.timezone.utc).isoformat(),
                level=entry["level"],
                logger_name=entry["target"],
                message=entry["message"],
                extra_data=entry["fields"] or None,
            )
            for entry in entries
        ]

    async def get_log_stats(self) -> dict[str, Any]:
        stats = await asyncio.to_thread(self._logs.stats)
        result = {
            "total_logged": stats["logged"],
            "pending_count": stats["pending"],
            "dropped": stats["dropped"],
            "is_running": self._running,
            "db_path": self.db_path,
            "retention_days": self.retention_days,
        }
        if self.db_path and os.path.exists(self.db_path):
            result["db_size_mb"] = round(os.path.getsize(self.db_path) / 1_048_576, 3)
        return result


class DatabaseLogHandler(logging.Handler):
    """A ``logging.Handler`` for :class:`LogDatabase`: never blocks, from any thread."""

    def __init__(self, log_database: LogDatabase, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._inner = litehouse.LogHandler(log_database._logs, level)

    def emit(self, record: logging.LogRecord) -> None:
        self._inner.emit(record)
