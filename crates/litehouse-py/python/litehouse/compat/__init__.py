"""Drop-in layers for code written against other Python SQLite libraries.

- :mod:`litehouse.compat.jpy`: jpy-sync-db-lite 2025.5.0's ``DbEngine``.
"""
