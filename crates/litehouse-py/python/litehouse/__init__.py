"""litehouse: SQLite from many threads and asyncio tasks, without "database is locked".

A :class:`Database` owns one writer thread: writes from every thread and task are queued,
grouped and committed together (each inside its own savepoint, so one failing write does not
fail its neighbours), and every caller hears back only after the commit. Reads run beside it on
a pool of read-only connections. Every wait releases the GIL.

    >>> import litehouse
    >>> db = litehouse.Database.memory("doctest")
    >>> db.execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, status TEXT)")
    0
    >>> db.execute("INSERT INTO jobs(status) VALUES (?)", ("queued",))
    1
    >>> db.query("SELECT id, status FROM jobs")
    [{'id': 1, 'status': 'queued'}]
"""

from __future__ import annotations

from ._litehouse import Database, LogDatabase, Store, Transaction, WriteBuffer, __version__
from .aio import AsyncDatabase
from .handler import LogHandler
from .errors import *  # noqa: F403
from .errors import __all__ as _errors

__all__ = [
    "Database",
    "AsyncDatabase",
    "Transaction",
    "WriteBuffer",
    "LogDatabase",
    "LogHandler",
    "Store",
    "__version__",
    *_errors,
]
