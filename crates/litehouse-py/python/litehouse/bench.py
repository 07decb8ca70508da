"""Benchmarks litehouse from Python against what Python users have: jpy-sync-db-lite 2025.5.0
(if installed) and the standard library's ``sqlite3`` with one connection behind a lock.

    python -m litehouse.bench [--quick] [--json]

Every workload runs each implementation on a fresh file in the same process run, for the same
time, and reports operations per second and the ratio against jpy-sync-db-lite (or against the
locked ``sqlite3`` connection when jpy-sync-db-lite is not installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import threading
import time
from typing import Any, Callable

import litehouse
from litehouse.compat import jpy as compat_jpy

try:  # pragma: no cover - depends on the environment
    import jpy_sync_db_lite
except ImportError:  # pragma: no cover
    jpy_sync_db_lite = None

SCHEMA = "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)"
INSERT_NAMED = "INSERT INTO items(name, n) VALUES (:name, :n)"
INSERT = "INSERT INTO items(name, n) VALUES (?, ?)"
READ_NAMED = "SELECT id, name, n FROM items WHERE id = :id"
READ = "SELECT id, name, n FROM items WHERE id = ?"
READ_ROWS = 10_000


class Locked:
    """What a Python program would otherwise write: one ``sqlite3`` connection, one lock."""

    def __init__(self, path: str, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.lock = threading.Lock()

    def insert(self, i: int) -> None:
        with self.lock:
            self.conn.execute(INSERT, (f"item {i}", i))

    def read(self, key: int) -> Any:
        with self.lock:
            return self.conn.execute(READ, (key,)).fetchone()

    def setup(self) -> None:
        with self.lock:
            self.conn.execute(SCHEMA)

    def fill(self) -> None:
        with self.lock:
            self.conn.execute("BEGIN")
            self.conn.executemany(INSERT, [(f"item {i}", i) for i in range(READ_ROWS)])
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class Native:
    def __init__(self, path: str, synchronous: str) -> None:
        profile = "durable" if synchronous == "FULL" else "balanced"
        self.db = litehouse.Database(path, profile=profile)

    def setup(self) -> None:
        self.db.execute(SCHEMA)

    def fill(self) -> None:
        self.db.execute_many(INSERT, [(f"item {i}", i) for i in range(READ_ROWS)])

    def insert(self, i: int) -> None:
        self.db.execute(INSERT, (f"item {i}", i))

    def read(self, key: int) -> Any:
        return self.db.query_row(READ, (key,), tuples=True)

    def close(self) -> None:
        self.db.close()


class JpyLike:
    """jpy-sync-db-lite's API: the real one, or litehouse.compat.jpy."""

    def __init__(self, module: Any, path: str, synchronous: str) -> None:
        self.engine = module.DbEngine(f"sqlite:///{path}")
        if synchronous == "FULL":
            self.engine.configure_pragma("synchronous", "FULL")

    def setup(self) -> None:
        self.engine.execute(SCHEMA)

    def fill(self) -> None:
        self.engine.execute_transaction(
            [{"operation": "execute", "query": INSERT_NAMED, "params": {"name": f"item {i}", "n": i}} for i in range(READ_ROWS)]
        )

    def insert(self, i: int) -> None:
        self.engine.execute(INSERT_NAMED, params={"name": f"item {i}", "n": i})

    def read(self, key: int) -> Any:
        return self.engine.fetch(READ_NAMED, params={"id": key})

    def close(self) -> None:
        self.engine.shutdown()


def implementations() -> dict[str, Callable[[str, str], Any]]:
    found: dict[str, Callable[[str, str], Any]] = {}
    if jpy_sync_db_lite is not None:
        found["jpy-sync-db-lite"] = lambda path, sync: JpyLike(jpy_sync_db_lite, path, sync)
    found["sqlite3+lock"] = Locked
    found["litehouse"] = Native
    found["litehouse.compat.jpy"] = lambda path, sync: JpyLike(compat_jpy, path, sync)
    return found


def run_threads(threads: int, seconds: float, op: Callable[[int, int], None]) -> tuple[float, int]:
    stop = time.monotonic() + seconds
    counts = [0] * threads
    failures = [0] * threads

    def worker(index: int) -> None:
        i = 0
        while time.monotonic() < stop:
            try:
                op(index, i)
                counts[index] += 1
            except Exception:
                failures[index] += 1
            i += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.monotonic() - started), sum(failures)


def workload_inserts(make, path: str, threads: int, synchronous: str, seconds: float) -> tuple[float, int]:
    impl = make(path, synchronous)
    try:
        impl.setup()
        return run_threads(threads, seconds, lambda index, i: impl.insert(index * 10_000_000 + i))
    finally:
        impl.close()


def workload_reads(make, path: str, threads: int, synchronous: str, seconds: float) -> tuple[float, int]:
    impl = make(path, synchronous)
    try:
        impl.setup()
        impl.fill()
        return run_threads(threads, seconds, lambda index, i: impl.read((index * 7919 + i * 2654435761) % READ_ROWS + 1))
    finally:
        impl.close()


def workload_async(path: str, tasks: int, seconds: float, which: str) -> tuple[float, int]:
    async def main() -> tuple[float, int]:
        if which == "litehouse":
            db = litehouse.AsyncDatabase(path)
            await db.execute(SCHEMA)
            insert = lambda i: db.execute(INSERT, (f"item {i}", i))  # noqa: E731
            close = db.close
        else:
            locked = Locked(path, "NORMAL")
            locked.setup()
            insert = lambda i: asyncio.to_thread(locked.insert, i)  # noqa: E731

            async def close() -> None:
                locked.close()

        stop = time.monotonic() + seconds
        count = 0
        failures = 0

        async def task(index: int) -> None:
            nonlocal count, failures
            i = 0
            while time.monotonic() < stop:
                try:
                    await insert(index * 10_000_000 + i)
                    count += 1
                except Exception:
                    failures += 1
                i += 1

        started = time.monotonic()
        await asyncio.gather(*(task(index) for index in range(tasks)))
        elapsed = time.monotonic() - started
        await close()
        return count / elapsed, failures

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litehouse.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about a minute in all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else 3.0
    impls = implementations()
    reference = "jpy-sync-db-lite" if "jpy-sync-db-lite" in impls else "sqlite3+lock"
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        counter = iter(range(1_000_000))

        def fresh() -> str:
            return os.path.join(scratch, f"bench-{next(counter)}.db")

        plan: list[tuple[str, Callable[[str, Any], tuple[float, int]]]] = []
        for synchronous, label in (("NORMAL", "Balanced"), ("FULL", "Durable")):
            for threads in (8, 64):
                plan.append(
                    (
                        f"inserts, {threads} threads, {label}",
                        lambda path, make, t=threads, s=synchronous: workload_inserts(make, path, t, s, seconds),
                    )
                )
        plan.append(("point reads, 8 threads", lambda path, make: workload_reads(make, path, 8, "NORMAL", seconds)))
        for title, run in plan:
            for name, make in impls.items():
                ops, failures = run(fresh(), make)
                results.append({"workload": title, "implementation": name, "ops_per_sec": round(ops), "failures": failures})
        for name in ("sqlite3+lock", "litehouse"):
            ops, failures = workload_async(fresh(), 64, seconds, name)
            results.append({"workload": "inserts, 64 asyncio tasks, Balanced", "implementation": name, "ops_per_sec": round(ops), "failures": failures})
    by_workload: dict[str, dict[str, int]] = {}
    for row in results:
        by_workload.setdefault(row["workload"], {})[row["implementation"]] = row["ops_per_sec"]
    for row in results:
        base = by_workload[row["workload"]].get(reference) or by_workload[row["workload"]].get("sqlite3+lock")
        row["ratio"] = round(row["ops_per_sec"] / base, 2) if base else None
    if args.json:
        for row in results:
            print(json.dumps(row))
        return 0
    print(f"ratios against {reference} (sqlite3+lock where it is absent); same file layout, same run")
    current = None
    for row in results:
        if row["workload"] != current:
            current = row["workload"]
            print(f"\n{current}")
            print(f"  {'implementation':<24}{'ops/s':>12}{'failures':>10}{'ratio':>9}")
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(f"  {row['implementation']:<24}{row['ops_per_sec']:>12}{row['failures']:>10}{ratio:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
