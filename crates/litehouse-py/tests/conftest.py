import itertools

import pytest

import litehouse

_names = itertools.count()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "test.db")


@pytest.fixture
def db(path):
    database = litehouse.Database(path)
    database.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    yield database
    database.close()


@pytest.fixture
def memory_name():
    return f"pytest-{next(_names)}"
