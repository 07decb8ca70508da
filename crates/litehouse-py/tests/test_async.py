"""The asyncio face: the same methods, awaited, and the event loop never waits."""

import asyncio
import threading
import time

import pytest

import litehouse


def run(coroutine):
    return asyncio.run(coroutine)


def test_async_database_mirrors_the_blocking_one(path):
    async def main():
        async with litehouse.AsyncDatabase(path) as db:
            await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            assert await db.execute("INSERT INTO t(v) VALUES (?)", ("a",)) == 1
            assert await db.execute_many("INSERT INTO t(v) VALUES (?)", [("b",), ("c",)]) == 2
            assert await db.query("SELECT v FROM t ORDER BY id", tuples=True) == [("a",), ("b",), ("c",)]
            assert await db.query_row("SELECT count(*) AS n FROM t") == {"n": 3}
            assert await db.query_optional("SELECT v FROM t WHERE id = 99") is None
            with pytest.raises(litehouse.NoRowsError):
                await db.query_row("SELECT v FROM t WHERE id = 99")
            with pytest.raises(litehouse.ConstraintError):
                await db.execute("INSERT INTO t(id, v) VALUES (1, 'dup')")
            assert await db.transaction(lambda conn: conn.execute("DELETE FROM t WHERE id = 1")) == 1
            assert (await db.script("SELECT 1 AS one"))[0]["rows"] == [{"one": 1}]
            assert await db.integrity_check() == []
            assert db.stats()["execute"]["count"] >= 2
        assert db.closed

    run(main())


def test_64_tasks_insert_at_once(path):
    async def main():
        db = litehouse.AsyncDatabase(path, profile="durable")
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")

        async def task(index):
            for i in range(20):
                await db.execute("INSERT INTO t(v) VALUES (?)", (f"{index}-{i}",))

        await asyncio.gather(*(task(i) for i in range(64)))
        assert await db.query_row("SELECT count(*) AS n FROM t") == {"n": 1280}
        await db.close()

    run(main())


def test_the_event_loop_keeps_running_while_a_write_waits(path):
    db = litehouse.Database(path)
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    release = threading.Event()
    entered = threading.Event()

    def hold(conn):
        # The first statement waits until the transaction is open on the writer.
        conn.query_row("SELECT 1 AS one")
        entered.set()
        release.wait(10)

    holder = threading.Thread(target=db.transaction, args=(hold,))
    holder.start()
    assert entered.wait(10)

    async def main():
        adb = litehouse.AsyncDatabase.wrap(db)
        write = asyncio.ensure_future(adb.execute("INSERT INTO t(v) VALUES ('waits')"))
        ticks = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.2:
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 10, "the loop was blocked"
        assert not write.done()
        release.set()
        assert await write == 1

    run(main())
    holder.join(10)
    db.close()


def test_cancelled_awaits_do_not_hurt_the_database(path):
    async def main():
        db = litehouse.AsyncDatabase(path)
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        writes = [asyncio.ensure_future(db.execute("INSERT INTO t(v) VALUES ('x')")) for _ in range(50)]
        for write in writes[::2]:
            write.cancel()
        await asyncio.gather(*writes, return_exceptions=True)
        # Cancelled or not, the database still answers.
        assert await db.execute("INSERT INTO t(v) VALUES ('after')") == 1
        await db.close()

    run(main())


def test_event_loops_in_several_threads_each_get_their_own_results(path):
    """Completions are queued per event loop: four threads, each with its own loop, all at once."""
    db = litehouse.Database(path)
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, loop INTEGER, v INTEGER)")
    seen = {}
    errors = []

    def thread_main(number):
        async def main():
            loop_id = id(asyncio.get_running_loop())

            async def one(i):
                await db.execute_async("INSERT INTO t(loop, v) VALUES (?, ?)", (number, i))
                row = await db.query_row_async(
                    "SELECT count(*) AS n FROM t WHERE loop = ? AND v = ?", (number, i)
                )
                assert row == {"n": 1}
                return asyncio.get_running_loop() is not None and id(asyncio.get_running_loop()) == loop_id

            results = await asyncio.gather(*(one(i) for i in range(200)))
            seen[number] = all(results)

        try:
            asyncio.run(main())
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert seen == {0: True, 1: True, 2: True, 3: True}
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 800}
    db.close()


def test_a_new_loop_after_asyncio_run_still_resolves(path):
    db = litehouse.Database(path)
    db.execute("CREATE TABLE t(v INTEGER)")

    async def insert(value):
        return await db.execute_async("INSERT INTO t(v) VALUES (?)", (value,))

    for round_ in range(5):
        assert asyncio.run(insert(round_)) == 1
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 5}
    db.close()


def test_async_calls_need_a_running_loop(path):
    db = litehouse.Database(path)
    with pytest.raises(RuntimeError):
        db.execute_async("SELECT 1")
    db.close()
