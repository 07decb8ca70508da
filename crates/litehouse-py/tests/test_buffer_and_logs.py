"""WriteBuffer and LogDatabase from Python, and the logging handler from threads and from
asyncio."""

import asyncio
import logging
import threading

import pytest

import litehouse


def test_buffer_coalesces_flushes_and_keeps_rejected_rows(db):
    db.execute("CREATE TABLE progress(job INTEGER PRIMARY KEY, done INTEGER NOT NULL)")
    buffer = litehouse.WriteBuffer(db, flush_interval=3600)
    for done in range(101):
        buffer.upsert("progress", {"job": 7, "done": done}, ["job"])
    buffer.upsert("progress", {"job": 8, "done": None}, ["job"])  # NOT NULL: refused
    assert buffer.force_flush() == 1
    assert db.query_row("SELECT done FROM progress WHERE job = 7") == {"done": 100}
    stats = buffer.stats()
    assert stats["coalesced"] == 100 and stats["rejected"] == 1
    rejected = buffer.rejected()
    assert rejected[0]["key"] == {"job": 8} and "NOT NULL" in rejected[0]["error"]
    db.execute("UPDATE _litehouse_rejected SET write = json_set(write, '$.upsert.done', 1)")
    assert buffer.retry_rejected([rejected[0]["id"]]) == 1
    # Replayed: nothing is left unresolved, so stop reports only the row it wrote.
    assert buffer.stop() == 1
    assert buffer.stats()["rejected"] == 1
    assert db.query_row("SELECT count(*) AS n FROM progress") == {"n": 2}
    with pytest.raises(litehouse.ClosedError):
        buffer.upsert("progress", {"job": 9, "done": 1}, ["job"])


def test_buffer_from_many_threads(db):
    db.execute("CREATE TABLE status(worker INTEGER, item INTEGER, state TEXT, PRIMARY KEY (worker, item))")
    buffer = litehouse.WriteBuffer(db, max_buffer_size=500, flush_interval=0.05)

    def work(worker):
        for round_ in range(5):
            for item in range(100):
                buffer.upsert("status", {"worker": worker, "item": item, "state": f"r{round_}"}, ["worker", "item"])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    buffer.stop()
    assert db.query_row("SELECT count(*) AS n, min(state) AS s FROM status") == {"n": 800, "s": "r4"}


def test_stop_reports_rejections_left_unresolved(db):
    db.execute("CREATE TABLE strict(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    buffer = litehouse.WriteBuffer(db, flush_interval=3600)
    buffer.upsert("strict", {"id": 1, "v": None}, ["id"])
    buffer.upsert("strict", {"id": 2, "v": "ok"}, ["id"])
    with pytest.raises(litehouse.RejectedError) as raised:
        buffer.stop()
    assert raised.value.rows == 1
    assert db.query_row("SELECT count(*) AS n FROM strict") == {"n": 1}


def test_buffer_full_and_bad_config(db):
    buffer = litehouse.WriteBuffer(db, max_buffer_size=1, flush_interval=3600)
    buffer.try_upsert("t", {"id": 1, "v": "a"}, ["id"])
    with pytest.raises(litehouse.BufferFullError) as raised:
        buffer.try_upsert("t", {"id": 2, "v": "b"}, ["id"])
    assert raised.value.capacity == 1
    buffer.stop()
    with pytest.raises(litehouse.ConfigError):
        litehouse.WriteBuffer(db, flush_interval=0)
    with pytest.raises(litehouse.ParameterError):
        litehouse.WriteBuffer(db).upsert("t; DROP TABLE t", {"id": 1}, ["id"])


def test_log_database_and_handler_from_threads_and_asyncio(tmp_path):
    logs = litehouse.LogDatabase(str(tmp_path / "logs.db"))
    logger = logging.getLogger("litehouse-test")
    logger.setLevel(logging.DEBUG)
    handler = litehouse.LogHandler(logs)
    logger.addHandler(handler)
    try:
        threads = [
            threading.Thread(target=lambda i=i: [logger.info("thread %s line %s", i, n) for n in range(50)])
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        async def from_tasks():
            async def task(i):
                logger.warning("task %s", i, extra={"job": i})
                await asyncio.sleep(0)

            await asyncio.gather(*(task(i) for i in range(20)))

        asyncio.run(from_tasks())
        try:
            raise ValueError("bad input")
        except ValueError:
            logger.exception("failed")
        handler.flush()
        stats = logs.stats()
        assert stats["logged"] + stats["dropped"] == 221
        assert stats["dropped"] == 0
        warnings = logs.query(min_level="WARNING", limit=1000)
        assert len(warnings) == 21
        jobs = {entry["fields"].get("job") for entry in warnings}
        assert set(range(20)) <= jobs
        errors = logs.query(min_level="ERROR")
        assert errors[0]["message"] == "failed" and "ValueError" in errors[0]["fields"]["exception"]
        assert logs.query(contains="thread 3 line 49")[0]["target"] == "litehouse-test"
    finally:
        logger.removeHandler(handler)
    logs.shutdown()
    assert logs.log("INFO", "late", "after shutdown") is False
    assert logs.stats()["dropped"] == 1


def test_log_levels_and_config_errors(tmp_path):
    logs = litehouse.LogDatabase(str(tmp_path / "logs.db"), retention=None)
    with pytest.raises(litehouse.ConfigError):
        logs.log("LOUD", "x", "y")
    with pytest.raises(TypeError):
        logs.log("INFO", "x", "y", ["not", "a", "dict"])
    with pytest.raises(litehouse.ConfigError):
        litehouse.LogDatabase(str(tmp_path / "other.db"), flush_interval=-1)
    assert logs.log("CRITICAL", "x", "y", {"n": 1}) is True
    assert logs.flush() == 1
    assert logs.query()[0]["level"] == "ERROR"
    logs.shutdown()
