"""litehouse.compat.hybrid against the hybrid strategy template's API, and the template's defects
that must not come back."""

import asyncio
import logging
import subprocess
import sys

import pytest

import litehouse
from litehouse.compat.hybrid import (
    BufferConfig,
    DatabaseBusyError,
    DatabaseLockMetrics,
    DatabaseLogHandler,
    LogDatabase,
    WriteBufferCache,
    execute_with_retry,
    is_lock_error,
    with_db_retry,
)


def test_is_lock_error():
    import sqlite3

    assert is_lock_error(sqlite3.OperationalError("database is locked"))
    assert not is_lock_error(sqlite3.OperationalError("no such table: x"))
    assert not is_lock_error(ValueError("database is locked"))
    busy = litehouse.BusyError("busy")
    assert is_lock_error(busy)


def test_with_db_retry_sync_and_async():
    import sqlite3

    DatabaseLockMetrics.reset()
    calls = []

    @with_db_retry(max_retries=3, base_delay=0.001, max_delay=0.01)
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert flaky() == "done" and len(calls) == 3

    @with_db_retry(max_retries=2, base_delay=0.001, max_delay=0.01)
    async def always_locked():
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(DatabaseBusyError) as raised:
        asyncio.run(always_locked())
    assert raised.value.attempts == 3
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)

    @with_db_retry()
    def other():
        raise KeyError("not a lock error")

    with pytest.raises(KeyError):
        other()
    metrics = DatabaseLockMetrics.get_metrics()
    assert metrics["total_lock_errors"] == 5
    assert metrics["total_retries"] == 4
    assert metrics["total_failures"] == 1
    assert metrics["total_successes_after_retry"] == 1
    assert metrics["last_lock_error"] is not None
    assert metrics["error_rate_per_minute"] == 1.0


def test_execute_with_retry():
    async def main():
        attempts = []

        async def op():
            attempts.append(1)
            return 42

        assert await execute_with_retry(op) == 42
        assert await execute_with_retry(lambda: 7) == 7

    asyncio.run(main())


def test_write_buffer_cache_keeps_upsert_then_update_and_loses_nothing(db):
    db.execute("CREATE TABLE tracks(id INTEGER PRIMARY KEY, title TEXT, plays INTEGER DEFAULT 0, rating INTEGER)")

    async def main():
        cache = WriteBufferCache(db, BufferConfig(max_buffer_size=50, flush_interval_seconds=3600, flush_batch_size=10, table_priorities={"tracks": 1}))
        await cache.start()
        await cache.buffer_upsert("tracks", {"id": 1, "title": "a", "rating": 5}, ["id"])
        await cache.buffer_update("tracks", {"id": 1, "plays": 3}, ["id"])
        assert await cache.get_buffered_value("tracks", {"id": 1}, ["id"]) == {"id": 1, "title": "a", "rating": 5, "plays": 3}
        # More rows than max_buffer_size: writers wait for room, nothing is dropped.
        for i in range(2, 200):
            await cache.buffer_upsert("tracks", {"id": i, "title": f"t{i}"}, ["id"])
        await cache.buffer_delete("tracks", {"id": 199}, ["id"])
        assert await cache.get_buffered_value("tracks", {"id": 199}, ["id"]) is None
        stats = cache.get_stats()
        assert stats["is_running"] and stats["total_buffered"] == 201
        await cache.stop()
        assert cache.get_stats()["pending_count"] == 0
        assert await cache.get_buffered_value("tracks", {"id": 1}, ["id"]) is None

    asyncio.run(main())
    assert db.query_row("SELECT title, plays, rating FROM tracks WHERE id = 1") == {"title": "a", "plays": 3, "rating": 5}
    assert db.query_row("SELECT count(*) AS n FROM tracks") == {"n": 198}


def test_write_buffer_cache_upsert_keeps_columns_it_does_not_name(db):
    db.execute("CREATE TABLE t2(id INTEGER PRIMARY KEY, a TEXT, b TEXT)")
    db.execute("INSERT INTO t2 VALUES (1, 'keep', 'old')")

    async def main():
        cache = WriteBufferCache(db)
        await cache.buffer_upsert("t2", {"id": 1, "b": "new"}, ["id"])
        await cache.stop()

    asyncio.run(main())
    assert db.query_row("SELECT a, b FROM t2") == {"a": "keep", "b": "new"}


def test_log_database_does_not_deadlock_after_50_entries_and_works_in_memory():
    async def main():
        logs = LogDatabase(None, max_batch_size=50, flush_interval_seconds=0.05)
        await logs.start()
        for i in range(500):
            await logs.log("INFO", "app", f"entry {i}", {"i": i})
        recent = await logs.get_recent_logs(limit=1000)
        assert len(recent) == 500
        assert recent[0].logger_name == "app" and recent[0].extra_data == {"i": 499}
        errors_only = await logs.get_recent_logs(level="ERROR")
        assert errors_only == []
        stats = await logs.get_log_stats()
        assert stats["total_logged"] == 500 and stats["dropped"] == 0
        assert await logs.cleanup_old_logs() == 0
        await logs.stop()

    asyncio.run(asyncio.wait_for(main(), timeout=60))


def test_database_log_handler_logs_from_threads_without_a_loop(tmp_path):
    logs = LogDatabase(tmp_path / "logs.db")
    logger = logging.getLogger("hybrid-test")
    logger.setLevel(logging.INFO)
    handler = DatabaseLogHandler(logs)
    logger.addHandler(handler)
    try:
        import threading

        threads = [threading.Thread(target=lambda: [logger.info("from a thread") for _ in range(25)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        logger.removeHandler(handler)

    async def main():
        recent = await logs.get_recent_logs(limit=1000)
        assert len(recent) == 100
        stats = await logs.get_log_stats()
        assert stats["db_size_mb"] >= 0
        await logs.stop()

    asyncio.run(main())
