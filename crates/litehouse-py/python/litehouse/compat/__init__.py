"""Drop-in layers for code written against other Python SQLite libraries.

- :mod:`litehouse.compat.jpy`: jpy-sync-db-lite 2025.5.0's ``DbEngine``.
- :mod:`litehouse.compat.hybrid`: the "SQLite hybrid strategy" template (retry decorator,
  write-behind buffer, log database and handler).
"""
