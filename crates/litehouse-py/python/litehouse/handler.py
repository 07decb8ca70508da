"""``LogHandler``: a :class:`logging.Handler` that writes to a :class:`~litehouse.LogDatabase`.

``emit`` never blocks: the record is queued for the log database's own writer thread, and when
the queue is full the record is dropped and counted (``LogDatabase.stats()["dropped"]``). It is
safe from any thread, with or without a running event loop.
"""

from __future__ import annotations

import logging
from typing import Any

from ._litehouse import LogDatabase

# Attributes every LogRecord has; anything else came from ``extra=`` and is kept as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class LogHandler(logging.Handler):
    """Sends log records to a :class:`~litehouse.LogDatabase` without ever waiting."""

    def __init__(self, logs: LogDatabase, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {
                key: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
                for key, value in vars(record).items()
                if key not in _STANDARD
            }
            fields["module"] = record.module
            fields["line"] = record.lineno
            if record.exc_info:
                fields["exception"] = self.format(record) if self.formatter else logging.Formatter().formatException(record.exc_info)
            self.logs.log(record.levelname, record.name, record.getMessage(), fields)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Writes what is queued (waits for the log writer, without the GIL)."""
        try:
            self.logs.flush()
        except Exception:  # pragma: no cover - flushing is best effort
            pass
