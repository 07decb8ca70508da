"""jpy-sync-db-lite's ``DbEngine`` on litehouse: switch with one import change.

Replace ``from jpy_sync_db_lite import DbEngine`` with
``from litehouse.compat.jpy import DbEngine``. The constructor, the methods, their return shapes
(:class:`DbResult`, lists of dicts) and the exception classes are those of jpy-sync-db-lite
2025.5.0. What runs underneath is litehouse: writes from every thread are grouped and committed
together on one writer thread, reads run in parallel on reader connections, and waits release
the GIL, where jpy-sync-db-lite serializes every call on one connection under one lock.

Where jpy-sync-db-lite behaves in ways its callers cannot rely on, this layer does it right:

- ``get_stats()["errors"]`` counts failed calls (jpy never increments it), and
  ``transaction_operations`` counts transactions.
- No ``SELECT 1`` health check runs before every call, and no SQL parse on every ``execute``
  beyond a cheap look at the first keyword.
- Reads do not wait for writes (jpy holds one lock for everything).
- ``configure_pragma`` and ``analyze(table_name=...)`` validate the names they put in SQL (jpy
  formats them in unchecked).
- ``get_sqlite_info`` does not count its own pragma reads as fetch operations.
- ``get_raw_connection()`` yields a standard ``sqlite3`` connection to the same file: a second
  connection, so its writes wait for the lock like any other process's (litehouse owns the one
  writing connection). It is not available for ``:memory:`` databases.

Kept as jpy-sync-db-lite has them, because callers can observe them: ``transaction()`` collects
``execute``/``fetch`` calls and runs them together when the block ends (the calls return None);
``execute_many`` and ``batch`` report ``rowcount=1`` per execute statement; ``optimize()`` is
``vacuum()`` then ``analyze()``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sqlite3
import threading
from typing import Any, Iterator, NamedTuple

import litehouse

__all__ = [
    "DbEngine",
    "DbResult",
    "JpySyncDbLiteError",
    "DatabaseError",
    "ConnectionError",
    "TransactionError",
    "OperationError",
    "MaintenanceError",
    "SqlFileError",
    "SqlValidationError",
    "detect_statement_type",
    "parse_sql_statements",
]


class JpySyncDbLiteError(Exception):
    """Base class of the jpy-sync-db-lite exceptions."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SqlFileError(JpySyncDbLiteError):
    """A SQL file could not be read."""


class SqlValidationError(JpySyncDbLiteError):
    """SQL text is not valid."""


class DatabaseError(JpySyncDbLiteError):
    """A database operation failed."""


class ConnectionError(DatabaseError):  # noqa: A001 - the name jpy-sync-db-lite uses
    """The connection failed."""


class TransactionError(DatabaseError):
    """A transaction failed and was rolled back."""


class OperationError(DatabaseError):
    """``execute`` or ``fetch`` failed."""


class MaintenanceError(DatabaseError):
    """A maintenance operation failed."""


class DbResult(NamedTuple):
    """What ``execute`` and ``fetch`` return."""

    result: bool
    rowcount: int | None
    data: list[dict[str, Any]] | None


_FETCH_KEYWORDS = {"SELECT", "VALUES", "SHOW", "EXPLAIN", "PRAGMA", "DESC", "DESCRIBE"}
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRAGMA_VALUE = re.compile(r"^[A-Za-z0-9_.\-+']+$")
_memory_names = itertools.count()


def _strip_comments(sql: str) -> str:
    out, i, quote = [], 0, None
    while i < len(sql):
        ch = sql[i]
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
            i += 1
        elif ch in "'\"`":
            quote = ch
            out.append(ch)
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def detect_statement_type(sql: str) -> str:
    """``"fetch"`` for statements that return rows (SELECT, VALUES, PRAGMA, EXPLAIN, and a
    ``WITH`` whose main statement is a SELECT), else ``"execute"``."""
    text = _strip_comments(sql).strip()
    words = _WORD.findall(text)
    if not words:
        return "execute"
    first = words[0].upper()
    if first != "WITH":
        return "fetch" if first in _FETCH_KEYWORDS else "execute"
    # The main statement follows the CTEs: the first keyword at parenthesis depth 0 after
    # the CTE list.
    depth, i, seen_body = 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
            seen_body = True
        elif ch == ")":
            depth -= 1
        elif depth == 0 and seen_body and ch.isalpha():
            match = _WORD.match(text, i)
            word = match.group(0).upper() if match else ""
            if word in {"SELECT", "VALUES"}:
                return "fetch"
            if word in {"INSERT", "UPDATE", "DELETE", "REPLACE"}:
                return "execute"
            i = match.end() if match else i + 1
            continue
        elif ch in "'\"":
            end = text.find(ch, i + 1)
            i = len(text) if end < 0 else end
        i += 1
    return "fetch"


def parse_sql_statements(sql: str, *, strip_semicolon: bool = False) -> list[str]:
    """Splits a script into statements, without comments; semicolons inside strings are kept
    where they are."""
    text = _strip_comments(sql)
    statements, current = [], ""
    for part in text.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            statement = current.strip()
            if statement.rstrip(";").strip():
                statements.append(statement[:-1].strip() if strip_semicolon else statement)
            current = ""
    rest = current.rstrip(";").strip()
    if rest:
        statements.append(rest if strip_semicolon else rest + ";")
    return statements


def _database_path(database_url: str) -> str | None:
    """The file path of a ``sqlite:///`` URL, or None for an in-memory database."""
    for prefix in ("sqlite+pysqlite:///", "sqlite:///"):
        if database_url.startswith(prefix):
            path = database_url[len(prefix) :]
            return None if path in ("", ":memory:") else path
    if database_url in ("sqlite://", "sqlite+pysqlite://"):
        return None
    raise ConnectionError(f"unsupported database URL {database_url!r}: use sqlite:///path/to/file.db")


class _TransactionProxy:
    """Collects ``execute`` and ``fetch`` calls of a ``with engine.transaction()`` block."""

    def __init__(self) -> None:
        self.operations: list[dict[str, Any]] = []

    def execute(self, query: str, params: dict[str, Any] | None = None) -> None:
        self.operations.append({"operation": "execute", "query": query, "params": params})

    def fetch(self, query: str, params: dict[str, Any] | None = None) -> None:
        self.operations.append({"operation": "fetch", "query": query, "params": params})


class DbEngine:
    """jpy-sync-db-lite's engine, on litehouse."""

    def __init__(
        self,
        database_url: str,
        *,
        debug: bool = False,
        timeout: int = 30,
        check_same_thread: bool = False,
        enable_prepared_statements: bool = True,
    ) -> None:
        self.debug = debug
        self.timeout = timeout
        self.check_same_thread = check_same_thread
        self.enable_prepared_statements = enable_prepared_statements
        self._path = _database_path(database_url)
        self._stats_lock = threading.Lock()
        self._stats = {
            "requests": 0,
            "errors": 0,
            "fetch_operations": 0,
            "execute_operations": 0,
            "transaction_operations": 0,
            "batch_operations": 0,
            "prepared_statements_created": 0,
            "connection_recreations": 1,
        }
        self._statements: set[str] = set()
        self._shutdown_event = threading.Event()
        pragmas = [("cache_size", "-128000"), ("temp_store", "MEMORY"), ("foreign_keys", "ON")]
        try:
            if self._path is None:
                self._db = litehouse.Database.memory(
                    f"jpy-{os.getpid()}-{next(_memory_names)}", busy_timeout=float(timeout), pragmas=pragmas
                )
            else:
                self._db = litehouse.Database(self._path, busy_timeout=float(timeout), pragmas=pragmas)
        except litehouse.Error as error:
            raise ConnectionError(f"Could not open {database_url}: {error}") from error

    # -- bookkeeping -------------------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for key, value in increments.items():
                self._stats[key] += value

    def _seen(self, query: str) -> None:
        if self.enable_prepared_statements and query not in self._statements:
            with self._stats_lock:
                if query not in self._statements:
                    self._statements.add(query)
                    self._stats["prepared_statements_created"] += 1

    @property
    def engine(self) -> litehouse.Database:
        """The litehouse database underneath."""
        return self._db

    @property
    def shutdown_event(self) -> threading.Event:
        return self._shutdown_event

    @property
    def stats(self) -> dict[str, int]:
        return self.get_stats()

    def get_stats(self) -> dict[str, int]:
        with self._stats_lock:
            return dict(self._stats)

    # -- statements --------------------------------------------------------------------------

    def _fetch_rows(self, query: str, params: Any) -> list[dict[str, Any]]:
        try:
            return self._db.query(query, params)
        except litehouse.ReadOnlyError:
            # A statement that writes and returns rows (INSERT ... RETURNING): on the writer.
            return self._db.transaction(lambda conn: conn.query(query, params))

    def execute(self, query: str, *, params: dict[str, Any] | list[dict[str, Any]] | None = None) -> DbResult:
        """Runs a statement and commits it; a list of parameter dicts runs it once per dict."""
        self._count(requests=1, execute_operations=1)
        self._seen(query)
        try:
            if isinstance(params, list):
                changed = self._db.execute_many(query, params)
                return DbResult(True, changed, None)
            if detect_statement_type(query) == "fetch":
                self._fetch_rows(query, params)
                return DbResult(True, 0, None)
            return DbResult(True, self._db.execute(query, params), None)
        except OperationError:
            self._count(errors=1)
            raise
        except Exception as error:
            self._count(errors=1)
            raise OperationError(f"Execute failed: {error}") from error

    def fetch(self, query: str, *, params: dict[str, Any] | None = None) -> DbResult:
        """Runs a query and returns its rows as dicts in ``data``."""
        self._count(requests=1, fetch_operations=1)
        self._seen(query)
        try:
            rows = self._fetch_rows(query, params)
        except Exception as error:
            self._count(errors=1)
            raise OperationError(f"Fetch failed: {error}") from error
        return DbResult(bool(rows), len(rows), rows)

    def execute_many(self, query: str, params_list: list[dict[str, Any]]) -> list[DbResult]:
        """Runs ``query`` once per parameter dict, all in one transaction."""
        kind = detect_statement_type(query)
        self._count(requests=len(params_list), **{f"{kind}_operations": len(params_list)})
        self._seen(query)

        def run(conn: litehouse.Transaction) -> list[DbResult]:
            results = []
            for params in params_list:
                if kind == "fetch":
                    rows = conn.query(query, params)
                    results.append(DbResult(bool(rows), len(rows), rows))
                else:
                    conn.execute(query, params)
                    results.append(DbResult(True, 1, None))
            return results

        try:
            return self._db.transaction(run)
        except Exception as error:
            self._count(errors=1)
            raise TransactionError(f"Transaction failed: {error}") from error

    def _run_operations(self, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def run(conn: litehouse.Transaction) -> list[dict[str, Any]]:
            results = []
            for operation in operations:
                kind = operation.get("operation")
                query = operation["query"]
                params = operation.get("params")
                if kind == "fetch":
                    results.append({"operation": "fetch", "result": conn.query(query, params)})
                elif kind == "execute":
                    conn.execute(query, params)
                    results.append({"operation": "execute", "result": True})
                else:
                    raise ValueError(f"Invalid operation type: {kind!r}")
            return results

        return self._db.transaction(run)

    def execute_transaction(self, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Runs ``{"operation": "execute"|"fetch", "query", "params"?}`` dicts in one
        transaction; any failure rolls all of them back."""
        self._count(requests=1, transaction_operations=1)
        try:
            return self._run_operations(operations)
        except Exception as error:
            self._count(errors=1)
            raise TransactionError(f"Transaction failed: {error}") from error

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_TransactionProxy]:
        """Collects ``tx.execute``/``tx.fetch`` calls and runs them in one transaction when
        the block ends (as jpy-sync-db-lite does; the calls return None)."""
        proxy = _TransactionProxy()
        try:
            yield proxy
        except Exception as error:
            self._count(errors=1)
            raise TransactionError(f"Transaction failed: {error}") from error
        if proxy.operations:
            self.execute_transaction(proxy.operations)

    def batch(self, batch_sql: str) -> list[dict[str, Any]]:
        """Runs a script's statements in one transaction; one result dict per statement."""
        self._count(batch_operations=1)
        statements = parse_sql_statements(batch_sql)

        def run(conn: litehouse.Transaction) -> list[dict[str, Any]]:
            results = []
            for statement in statements:
                kind = detect_statement_type(statement)
                if kind == "fetch":
                    rows = conn.query(statement)
                    result = DbResult(bool(rows), len(rows), rows)
                else:
                    conn.execute(statement)
                    result = DbResult(True, 1, None)
                results.append({"statement": statement, "operation": kind, "result": result})
            return results

        try:
            return self._db.transaction(run)
        except Exception as error:
            self._count(errors=1)
            raise TransactionError(f"Transaction failed: {error}") from error

    def script(self, sql_script: str) -> list[dict[str, Any]]:
        """Same as :meth:`batch`."""
        return self.batch(sql_script)

    @contextlib.contextmanager
    def get_raw_connection(self) -> Iterator[sqlite3.Connection]:
        """A standard ``sqlite3`` connection to the same file (a second connection: its writes
        wait for the lock like another process's)."""
        if self._path is None:
            raise OperationError("get_raw_connection is not available for in-memory databases")
        conn = sqlite3.connect(self._path, timeout=self.timeout, check_same_thread=self.check_same_thread)
        try:
            yield conn
        finally:
            conn.close()

    # -- maintenance -------------------------------------------------------------------------

    def configure_pragma(self, pragma_name: str, value: str) -> None:
        """Sets a pragma on the writing connection (name and value are validated)."""
        if not _NAME.match(pragma_name) or not _PRAGMA_VALUE.match(str(value)):
            raise OperationError(f"Invalid pragma {pragma_name!r} = {value!r}")
        try:
            self._db.pragma_update(pragma_name, str(value))
        except Exception as error:
            raise OperationError(f"Failed to configure pragma {pragma_name}: {error}") from error

    def vacuum(self) -> None:
        try:
            self._db.vacuum()
        except Exception as error:
            raise MaintenanceError(f"VACUUM failed: {error}") from error

    def analyze(self, *, table_name: str | None = None) -> None:
        try:
            if table_name is None:
                self._db.analyze()
            elif not _NAME.match(table_name):
                raise ValueError(f"invalid table name {table_name!r}")
            else:
                self._db.execute(f'ANALYZE "{table_name}"')
        except Exception as error:
            raise MaintenanceError(f"ANALYZE failed: {error}") from error

    def integrity_check(self) -> list[str]:
        """The problems ``PRAGMA integrity_check`` reports; empty when the file is sound."""
        try:
            return self._db.integrity_check()
        except Exception as error:
            raise MaintenanceError(f"Integrity check failed: {error}") from error

    def optimize(self) -> None:
        """``vacuum()`` then ``analyze()``."""
        self.vacuum()
        self.analyze()

    # -- information ---------------------------------------------------------------------------

    def get_sqlite_info(self) -> dict[str, Any]:
        """The SQLite version, file size and the writing connection's settings."""
        names = ["page_count", "page_size", "cache_size", "journal_mode", "synchronous", "temp_store", "mmap_size", "busy_timeout"]

        def read(conn: litehouse.Transaction) -> dict[str, Any]:
            info = {"version": conn.query_row("SELECT sqlite_version()", tuples=True)[0]}
            for name in names:
                row = conn.query_optional(f"PRAGMA {name}", tuples=True)
                info[name] = None if row is None else row[0]
            return info

        try:
            info = self._db.transaction(read)
        except Exception as error:
            raise OperationError(f"Failed to get SQLite info: {error}") from error
        size = os.path.getsize(self._path) if self._path and os.path.exists(self._path) else None
        return {"version": info["version"], "database_size": size, **{name: info[name] for name in names}}

    def get_performance_info(self) -> dict[str, Any]:
        stats = self.get_stats()
        requests = stats["requests"]
        engine = self._db.stats()
        return {
            "engine_stats": stats,
            "sqlite_info": self.get_sqlite_info(),
            "connection_pool": {
                "pool_size": 1,
                "checked_in": 0 if self._db.closed else 1,
                "checked_out": 0,
                "overflow": 0,
                "connection_healthy": self.check_connection_health(),
            },
            "performance_metrics": {
                "total_operations": requests,
                "error_rate_percent": round(100.0 * stats["errors"] / requests, 2) if requests else 0.0,
                "prepared_statements_cached": len(self._statements),
                "active_workers": 1,
                "litehouse": engine,
            },
            "configuration": {
                "pool_size": 1,
                "max_overflow": 0,
                "pool_timeout": self.timeout,
                "pool_recycle": 3600,
                "enable_prepared_statements": self.enable_prepared_statements,
                "connection_type": "litehouse_writer_and_readers",
            },
        }

    def get_connection_info(self) -> dict[str, Any]:
        return {
            "connection_exists": True,
            "connection_closed": self._db.closed,
            "connection_healthy": self.check_connection_health(),
            "connection_recreations": self.get_stats()["connection_recreations"],
        }

    def check_connection_health(self) -> bool:
        if self._db.closed:
            return False
        try:
            self._db.query_row("SELECT 1")
            return True
        except litehouse.Error:
            return False

    def recreate_connection(self) -> None:
        """Kept for compatibility: litehouse's connections need no recreating (counted only)."""
        self._count(connection_recreations=1)

    def get_prepared_statement_count(self) -> int:
        return len(self._statements)

    def clear_prepared_statements(self) -> None:
        with self._stats_lock:
            self._statements.clear()

    def shutdown(self) -> None:
        """Finishes queued writes and closes the database."""
        self._shutdown_event.set()
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> "DbEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
