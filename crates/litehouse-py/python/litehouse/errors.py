"""litehouse's exceptions, a PEP 249 style tree.

Every exception raised by litehouse is a :class:`Error`. Each instance has ``extended_code``
(SQLite's extended result code, or None when the error did not come from SQLite) and ``cause``
(the text of the underlying driver or operating-system error, or None).
"""

from __future__ import annotations

__all__ = [
    "Error",
    "DatabaseError",
    "OperationalError",
    "IntegrityError",
    "ProgrammingError",
    "BusyError",
    "ClosedError",
    "BufferFullError",
    "RejectedError",
    "UnwrittenError",
    "ConstraintError",
    "SqlError",
    "ParameterError",
    "ReadOnlyError",
    "NoRowsError",
    "IoError",
    "PanicError",
    "MisuseError",
    "ConfigError",
    "NotFoundError",
    "ConflictError",
    "InvalidInputError",
]


class Error(Exception):
    """Base class of every litehouse exception."""

    extended_code: int | None = None
    cause: str | None = None


class DatabaseError(Error):
    """An error reported by the database."""


class OperationalError(DatabaseError):
    """The database could not do it now: locked by another process, closed, full, I/O."""


class IntegrityError(DatabaseError):
    """A constraint refused the write; nothing of that request was written."""


class ProgrammingError(DatabaseError):
    """The call itself is wrong: bad SQL, wrong parameters, a write on the read path."""


class BusyError(OperationalError):
    """Another process held the write lock past the busy budget; nothing was written.

    ``retry_after`` (seconds) says when to try again; ``waited`` how long litehouse waited.
    """

    retry_after: float = 0.0
    waited: float = 0.0


class ClosedError(OperationalError):
    """The database (or buffer, or log database) was closed."""


class BufferFullError(OperationalError):
    """A write buffer already holds ``capacity`` rows; nothing was buffered."""

    capacity: int = 0


class RejectedError(IntegrityError):
    """A write buffer wrote every row it could, but the database refused ``rows`` of them.

    They are kept in the ``_litehouse_rejected`` table of the same database.
    """

    rows: int = 0


class UnwrittenError(OperationalError):
    """A log database shut down without writing ``entries`` log entries."""

    entries: int = 0


class ConstraintError(IntegrityError):
    """A constraint refused the write. ``kind`` is one of ``unique``, ``primarykey``,
    ``foreignkey``, ``notnull``, ``check``, ``trigger``, ``other``."""

    kind: str = "other"


class SqlError(ProgrammingError):
    """The SQL could not be prepared (syntax, unknown table or column)."""


class ParameterError(ProgrammingError):
    """The parameters do not fit the statement."""


class ReadOnlyError(ProgrammingError):
    """A statement that writes was sent to the read path; use execute or transaction."""


class NoRowsError(DatabaseError):
    """``query_row`` found no row."""


class IoError(OperationalError):
    """The disk or file system failed (I/O error, disk full, cannot open, corrupt)."""


class PanicError(DatabaseError):
    """Code running on a litehouse thread panicked; that request was rolled back."""


class MisuseError(ProgrammingError):
    """The API was used in a way that cannot work (for example a transaction function calling
    its own database instead of the connection it was given)."""


class ConfigError(Error, ValueError):
    """An invalid setting."""


class NotFoundError(DatabaseError, LookupError):
    """A document store collection or document does not exist."""


class ConflictError(IntegrityError):
    """A document store write conflicts: a unique index (``conflicting_id`` names the document
    that holds the value, ``index`` the index), a restricting reference, or an expected version."""

    conflicting_id: str | None = None
    index: str | None = None


class InvalidInputError(ProgrammingError, ValueError):
    """A document store call was given an invalid name, path, document, filter or query."""
