"""litehouse.compat.jpy against jpy-sync-db-lite 2025.5.0's documented API: every method, its
return shape and its error class."""

import threading

import pytest

from litehouse.compat import jpy
from litehouse.compat.jpy import (
    DbEngine,
    DbResult,
    JpySyncDbLiteError,
    MaintenanceError,
    OperationError,
    TransactionError,
)


@pytest.fixture
def engine(tmp_path):
    with DbEngine(f"sqlite:///{tmp_path / 'jpy.db'}") as db:
        db.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER)")
        yield db


def test_execute_and_fetch_shapes(engine):
    result = engine.execute("INSERT INTO users(name, age) VALUES (:name, :age)", params={"name": "ann", "age": 30})
    assert result == DbResult(True, 1, None)
    assert isinstance(result, tuple) and result.result and result.rowcount == 1 and result.data is None
    many = engine.execute("INSERT INTO users(name, age) VALUES (:name, :age)", params=[{"name": "bo", "age": 20}, {"name": "cy", "age": 40}])
    assert many.result and many.rowcount == 2
    fetched = engine.fetch("SELECT name FROM users WHERE age >= :age ORDER BY id", params={"age": 30})
    assert fetched == DbResult(True, 2, [{"name": "ann"}, {"name": "cy"}])
    empty = engine.fetch("SELECT name FROM users WHERE age > 100")
    assert empty == DbResult(False, 0, [])
    # A SELECT through execute reports rowcount 0, as jpy-sync-db-lite does.
    assert engine.execute("SELECT * FROM users") == DbResult(True, 0, None)


def test_params_are_keyword_only(engine):
    with pytest.raises(TypeError):
        engine.execute("SELECT 1", {"x": 1})  # type: ignore[misc]


def test_errors_are_operation_errors_and_are_counted(engine):
    with pytest.raises(OperationError) as raised:
        engine.execute("INSERT INTO users(name) VALUES (NULL)")
    assert isinstance(raised.value, JpySyncDbLiteError)
    assert raised.value.message.startswith("Execute failed:")
    assert raised.value.__cause__ is not None
    with pytest.raises(OperationError):
        engine.fetch("SELECT * FROM nowhere")
    assert engine.get_stats()["errors"] == 2


def test_execute_many_runs_in_one_transaction(engine):
    results = engine.execute_many("INSERT INTO users(name, age) VALUES (:name, :age)", [{"name": "a", "age": 1}, {"name": "b", "age": 2}])
    assert results == [DbResult(True, 1, None), DbResult(True, 1, None)]
    fetches = engine.execute_many("SELECT name FROM users WHERE age = :age", [{"age": 1}, {"age": 3}])
    assert fetches == [DbResult(True, 1, [{"name": "a"}]), DbResult(False, 0, [])]
    with pytest.raises(TransactionError):
        engine.execute_many("INSERT INTO users(name) VALUES (:name)", [{"name": "c"}, {"name": None}])
    assert engine.fetch("SELECT count(*) AS n FROM users").data == [{"n": 2}], "all or nothing"


def test_batch_and_script(engine):
    results = engine.batch(
        """
        -- a comment
        INSERT INTO users(name, age) VALUES ('x;y', 5);
        /* another */ SELECT name FROM users;
        UPDATE users SET age = 6;
        """
    )
    assert [r["operation"] for r in results] == ["execute", "fetch", "execute"]
    assert results[0]["result"] == DbResult(True, 1, None)
    assert results[1]["result"].data == [{"name": "x;y"}]
    assert "statement" in results[2]
    assert engine.script("SELECT count(*) AS n FROM users")[0]["result"].data == [{"n": 1}]
    with pytest.raises(TransactionError):
        engine.batch("INSERT INTO users(name) VALUES ('z'); INSERT INTO nowhere VALUES (1);")
    assert engine.fetch("SELECT count(*) AS n FROM users").data == [{"n": 1}]
    assert engine.get_stats()["batch_operations"] == 3


def test_execute_transaction(engine):
    results = engine.execute_transaction(
        [
            {"operation": "execute", "query": "INSERT INTO users(name) VALUES (:n)", "params": {"n": "t"}},
            {"operation": "fetch", "query": "SELECT name FROM users"},
        ]
    )
    assert results == [{"operation": "execute", "result": True}, {"operation": "fetch", "result": [{"name": "t"}]}]
    with pytest.raises(TransactionError) as raised:
        engine.execute_transaction(
            [
                {"operation": "execute", "query": "INSERT INTO users(name) VALUES ('u')"},
                {"operation": "execute", "query": "INSERT INTO users(name) VALUES (NULL)"},
            ]
        )
    assert raised.value.message.startswith("Transaction failed:")
    assert engine.fetch("SELECT count(*) AS n FROM users").data == [{"n": 1}]
    assert engine.get_stats()["transaction_operations"] == 2


def test_transaction_context_collects_and_runs_at_exit(engine):
    with engine.transaction() as tx:
        assert tx.execute("INSERT INTO users(name) VALUES (:n)", {"n": "in tx"}) is None
        assert tx.fetch("SELECT * FROM users") is None
        # Not run yet: deferred, as in jpy-sync-db-lite.
        assert engine.fetch("SELECT count(*) AS n FROM users").data == [{"n": 0}]
    assert engine.fetch("SELECT count(*) AS n FROM users").data == [{"n": 1}]
    with pytest.raises(TransactionError):
        with engine.transaction() as tx:
            tx.execute("INSERT INTO users(name) VALUES ('never')")
            raise RuntimeError("abort")
    assert engine.fetch("SELECT count(*) AS n FROM users").data == [{"n": 1}]


def test_maintenance_and_information(engine):
    engine.execute("INSERT INTO users(name) VALUES ('m')")
    engine.vacuum()
    engine.analyze()
    engine.analyze(table_name="users")
    engine.optimize()
    assert engine.integrity_check() == []
    with pytest.raises(MaintenanceError):
        engine.analyze(table_name="users; DROP TABLE users")
    engine.configure_pragma("cache_size", "-64000")
    with pytest.raises(OperationError):
        engine.configure_pragma("cache_size; DROP TABLE users", "1")
    info = engine.get_sqlite_info()
    assert set(info) == {"version", "database_size", "page_count", "page_size", "cache_size", "journal_mode", "synchronous", "temp_store", "mmap_size", "busy_timeout"}
    assert info["journal_mode"] == "wal" and info["database_size"] > 0
    perf = engine.get_performance_info()
    assert set(perf) == {"engine_stats", "sqlite_info", "connection_pool", "performance_metrics", "configuration"}
    assert perf["connection_pool"]["connection_healthy"] is True
    assert engine.get_connection_info()["connection_healthy"] is True
    assert engine.check_connection_health() is True
    engine.recreate_connection()
    assert engine.get_stats()["connection_recreations"] == 2
    assert engine.get_prepared_statement_count() >= 1
    engine.clear_prepared_statements()
    assert engine.get_prepared_statement_count() == 0
    stats = engine.stats
    assert set(stats) == {"requests", "errors", "fetch_operations", "execute_operations", "transaction_operations", "batch_operations", "prepared_statements_created", "connection_recreations"}
    with engine.get_raw_connection() as raw:
        assert raw.execute("SELECT count(*) FROM users").fetchone() == (1,)
    assert users_table_exists(engine)


def users_table_exists(engine):
    return engine.fetch("SELECT name FROM sqlite_master WHERE name = 'users'").rowcount == 1


def test_memory_database_and_shutdown():
    engine = DbEngine("sqlite:///:memory:")
    engine.execute("CREATE TABLE t(x)")
    engine.execute("INSERT INTO t VALUES (:x)", params={"x": 1})
    assert engine.fetch("SELECT x FROM t").data == [{"x": 1}]
    other = DbEngine("sqlite:///:memory:")
    with pytest.raises(OperationError):
        other.fetch("SELECT x FROM t")  # each engine has its own memory database
    with pytest.raises(OperationError):
        with engine.get_raw_connection():
            pass
    engine.shutdown()
    other.shutdown()
    assert engine.shutdown_event.is_set()
    assert engine.check_connection_health() is False


def test_threads_share_one_engine(engine):
    def work(index):
        for i in range(50):
            engine.execute("INSERT INTO users(name, age) VALUES (:n, :a)", params={"n": f"{index}", "a": i})
            engine.fetch("SELECT count(*) FROM users")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.fetch("SELECT count(*) AS n FROM users").data == [{"n": 400}]
    assert engine.get_stats()["requests"] >= 800


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "fetch"),
        ("  -- c\n select 1", "fetch"),
        ("PRAGMA user_version", "fetch"),
        ("VALUES (1)", "fetch"),
        ("EXPLAIN SELECT 1", "fetch"),
        ("INSERT INTO t VALUES (1)", "execute"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "fetch"),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "execute"),
        ("CREATE TABLE t(x)", "execute"),
        ("", "execute"),
    ],
)
def test_detect_statement_type(sql, kind):
    assert jpy.detect_statement_type(sql) == kind


def test_parse_sql_statements():
    assert jpy.parse_sql_statements("SELECT 1; SELECT ';'; -- c\n") == ["SELECT 1;", "SELECT ';';"]
    assert jpy.parse_sql_statements("SELECT 1; SELECT 2", strip_semicolon=True) == ["SELECT 1", "SELECT 2"]


def test_bad_url():
    with pytest.raises(jpy.ConnectionError):
        DbEngine("postgresql://localhost/x")
