"""The native API from Python threads: writes, reads, transactions, errors, maintenance."""

import sys
import threading
import time

import pytest

import litehouse


def test_execute_query_and_row_shapes(db):
    assert db.execute("INSERT INTO t(v) VALUES (?)", ("a",)) == 1
    assert db.execute("INSERT INTO t(v) VALUES (:v)", {"v": "b"}) == 1
    assert db.execute("INSERT INTO t(v) VALUES ($v)", {"$v": "c"}) == 1
    assert db.query("SELECT id, v FROM t ORDER BY id") == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "b"},
        {"id": 3, "v": "c"},
    ]
    assert db.query("SELECT id, v FROM t ORDER BY id", tuples=True)[0] == (1, "a")
    assert db.query_row("SELECT v FROM t WHERE id = ?", [2]) == {"v": "b"}
    assert db.query_optional("SELECT v FROM t WHERE id = 99") is None


def test_values_round_trip(db):
    db.execute("CREATE TABLE kinds(i INTEGER, r REAL, s TEXT, b BLOB, n TEXT, f INTEGER)")
    db.execute(
        "INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?)",
        (2**62, 1.5, "héllo", b"\x00\xff", None, True),
    )
    assert db.query_row("SELECT * FROM kinds", tuples=True) == (2**62, 1.5, "héllo", b"\x00\xff", None, 1)


def test_bad_values_and_parameters_are_typed_errors_and_change_nothing(db):
    with pytest.raises(OverflowError):
        db.execute("INSERT INTO t(id) VALUES (?)", (2**70,))
    with pytest.raises(TypeError):
        db.execute("INSERT INTO t(v) VALUES (?)", (object(),))
    with pytest.raises(TypeError):
        db.execute("INSERT INTO t(v) VALUES (?)", "abc")
    with pytest.raises(litehouse.ParameterError):
        db.execute("INSERT INTO t(v) VALUES (?)", (1, 2))
    with pytest.raises(litehouse.ParameterError):
        db.execute("INSERT INTO t(v) VALUES (:v)", {"w": 1})
    with pytest.raises(litehouse.SqlError) as raised:
        db.execute("INSERT INTO nowhere VALUES (1)")
    assert raised.value.extended_code == 1
    assert "no such table" in str(raised.value)
    # SQL in a value is only a value.
    db.execute("INSERT INTO t(v) VALUES (?)", ("x'); DROP TABLE t; --",))
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 1}


def test_constraint_errors_carry_kind_and_code(db):
    db.execute("INSERT INTO t(id, v) VALUES (1, 'a')")
    with pytest.raises(litehouse.ConstraintError) as raised:
        db.execute("INSERT INTO t(id, v) VALUES (1, 'b')")
    error = raised.value
    assert isinstance(error, litehouse.IntegrityError)
    assert isinstance(error, litehouse.Error)
    assert error.kind == "primarykey"
    assert error.extended_code == 1555  # SQLITE_CONSTRAINT_PRIMARYKEY
    assert error.cause and "UNIQUE" in error.cause


def test_reads_refuse_writes(db):
    with pytest.raises(litehouse.ReadOnlyError):
        db.query("INSERT INTO t(v) VALUES ('sneaked') RETURNING id")
    with pytest.raises(litehouse.ReadOnlyError):
        db.query("PRAGMA query_only = OFF")
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 0}


def test_no_rows_error(db):
    with pytest.raises(litehouse.NoRowsError):
        db.query_row("SELECT * FROM t")


def test_execute_many_and_script(db):
    assert db.execute_many("INSERT INTO t(v) VALUES (?)", [(str(i),) for i in range(100)]) == 100
    assert db.execute_many("INSERT INTO t(v) VALUES (:v)", [{"v": "named"}] * 3) == 3
    results = db.script("INSERT INTO t(v) VALUES ('s'); SELECT count(*) AS n FROM t")
    assert results[0]["changes"] == 1
    assert results[1]["rows"] == [{"n": 104}]


def test_execute_many_is_all_or_nothing(db):
    with pytest.raises(litehouse.ConstraintError):
        db.execute_many("INSERT INTO t(id, v) VALUES (?, ?)", [(1, "a"), (2, "b"), (1, "dup")])
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 0}


def test_transaction_read_modify_write_from_many_threads_loses_nothing(db):
    db.execute("CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER)")
    db.execute("INSERT INTO counter VALUES (1, 0)")

    def increment(conn):
        n = conn.query_row("SELECT n FROM counter WHERE id = 1")["n"]
        conn.execute("UPDATE counter SET n = ? WHERE id = 1", (n + 1,))
        return n + 1

    errors = []

    def worker():
        try:
            for _ in range(50):
                db.transaction(increment)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.query_row("SELECT n FROM counter") == {"n": 400}


def test_a_raising_transaction_rolls_back_and_propagates(db):
    class Boom(Exception):
        pass

    def failing(conn):
        conn.execute("INSERT INTO t(v) VALUES ('rolled back')")
        assert conn.query_row("SELECT count(*) AS n FROM t") == {"n": 1}
        raise Boom()

    with pytest.raises(Boom):
        db.transaction(failing)
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 0}
    assert db.transaction(lambda conn: conn.execute("INSERT INTO t(v) VALUES ('ok')")) == 1


def test_a_transaction_calling_its_own_database_is_misuse_not_a_deadlock(db):
    with pytest.raises(litehouse.MisuseError):
        db.transaction(lambda conn: db.execute("INSERT INTO t(v) VALUES ('x')"))
    stash = []
    db.transaction(stash.append)
    with pytest.raises(litehouse.MisuseError):
        stash[0].execute("INSERT INTO t(v) VALUES ('late')")
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 0}


def test_threads_write_at_once_without_lock_errors(path):
    db = litehouse.Database(path, profile="durable")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    errors = []

    def writer(index):
        try:
            for i in range(100):
                db.execute("INSERT INTO t(v) VALUES (?)", (f"{index}-{i}",))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 1600}
    stats = db.stats()
    assert stats["execute"]["count"] >= 1600
    assert stats["groups"] < 1600, "writes were grouped"
    db.close()


def test_waits_release_the_gil(db):
    """A pure-Python thread keeps running while another thread waits on a write."""
    release = threading.Event()
    entered = threading.Event()

    def hold(conn):
        conn.execute("INSERT INTO t(v) VALUES ('held')")
        entered.set()
        release.wait(10)

    holder = threading.Thread(target=db.transaction, args=(hold,))
    holder.start()
    assert entered.wait(10)
    waiter = threading.Thread(target=db.execute, args=("INSERT INTO t(v) VALUES ('waits')",))
    waiter.start()
    # The waiter is blocked on the writer; this thread must still run Python code freely.
    ticks = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        ticks += 1
    assert ticks > 10_000, "the GIL was held by a waiting call"
    assert waiter.is_alive()
    release.set()
    holder.join(10)
    waiter.join(10)
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 2}


def test_busy_error_with_retry_after_when_another_process_holds_the_lock(path):
    import subprocess

    db = litehouse.Database(path, busy_timeout=0.2)
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    # Another process: SQLite's locks do not conflict between connections of one process
    # that use different SQLite libraries (POSIX advisory locks are per process).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('LOCKED', flush=True)\n"
            "time.sleep(30)\n",
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(litehouse.BusyError) as raised:
            db.execute("INSERT INTO t(v) VALUES ('refused')")
        assert raised.value.retry_after > 0
        assert raised.value.extended_code == 5
        assert isinstance(raised.value, litehouse.OperationalError)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert db.execute("INSERT INTO t(v) VALUES ('now')") == 1
    assert db.stats()["locks"]["busy_errors"] == 1
    db.close()


def test_config_errors(path):
    with pytest.raises(litehouse.ConfigError):
        litehouse.Database(path, profile="fast")
    with pytest.raises(ValueError):
        litehouse.Database(path, busy_timeout=-1)
    with pytest.raises(litehouse.IoError):
        litehouse.Database("/nonexistent/dir/x.db")


def test_maintenance_backup_and_close(db, tmp_path):
    db.execute_many("INSERT INTO t(v) VALUES (?)", [("x" * 100,)] * 500)
    db.analyze()
    db.optimize()
    db.vacuum()
    assert db.checkpoint()["busy"] is False
    assert db.integrity_check() == []
    seen = []
    done, total = db.backup(str(tmp_path / "copy.db"), lambda d, t: seen.append((d, t)))
    assert done == total and seen
    copy = litehouse.Database(str(tmp_path / "copy.db"))
    assert copy.query_row("SELECT count(*) AS n FROM t") == {"n": 500}
    copy.close()
    db.close()
    assert db.closed
    with pytest.raises(litehouse.ClosedError):
        db.execute("INSERT INTO t(v) VALUES ('late')")


def test_pragma_update_runs_outside_a_transaction(db):
    db.pragma_update("synchronous", "FULL")
    with pytest.raises(litehouse.ParameterError):
        db.pragma_update("synchronous; DROP TABLE t", "1")
    assert db.query_row("SELECT count(*) AS n FROM t") == {"n": 0}


def test_context_manager_closes(path):
    with litehouse.Database(path) as db:
        db.execute("CREATE TABLE t(x)")
    assert db.closed


def test_memory_databases_are_shared_by_name(memory_name):
    a = litehouse.Database.memory(memory_name)
    b = litehouse.Database.memory(memory_name)
    a.execute("CREATE TABLE t(x)")
    a.execute("INSERT INTO t VALUES (1)")
    assert b.query_row("SELECT x FROM t") == {"x": 1}
    a.close()
    b.close()


def test_version_and_repr(db):
    assert isinstance(litehouse.__version__, str)
    assert "litehouse.Database" in repr(db)
    assert sys.modules["litehouse"].Database is litehouse.Database
