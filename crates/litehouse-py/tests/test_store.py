"""The document store from Python, on SQLite and (with LITEHOUSE_TEST_PG) on PostgreSQL."""

import os
import uuid

import pytest

import litehouse

PG = os.environ.get("LITEHOUSE_TEST_PG")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield litehouse.Store.open_sqlite(str(tmp_path / "docs.db"))
        return
    if not PG:
        pytest.skip("LITEHOUSE_TEST_PG is not set: PostgreSQL store tests skipped")
    schema = f"lh_py_{uuid.uuid4().hex[:12]}"
    yield litehouse.Store.open_postgres(PG, schema=schema)
    import subprocess

    subprocess.run(["psql", PG, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'], check=False, capture_output=True)


SPEC = {
    "indexes": [
        {"name": "by_age", "fields": [{"path": "age", "type": "number"}]},
        {"name": "by_email", "fields": [{"path": "email", "type": "string"}], "unique": True},
    ]
}


def test_documents_round_trip(store):
    store.create_collection("users", SPEC)
    assert [c["name"] for c in store.list_collections()] == ["users"]
    ann = store.create("users", {"name": "ann", "age": 31, "email": "ann@example.com"})
    assert ann["version"] == 1 and ann["body"]["name"] == "ann" and ann["id"]
    many = store.create_many("users", [{"name": f"u{i}", "age": i, "email": f"u{i}@example.com"} for i in range(20)])
    assert len(many) == 20
    assert store.get("users", ann["id"])["body"]["email"] == "ann@example.com"
    patched = store.patch("users", ann["id"], {"age": 32, "nickname": "a"}, expected_version=1)
    assert patched["version"] == 2 and patched["body"]["age"] == 32
    replaced = store.replace("users", ann["id"], {"name": "ann", "age": 33, "email": "ann@example.com"})
    assert "nickname" not in replaced["body"]
    assert store.count("users") == 21
    assert store.count("users", {"field": {"path": "age", "op": "gte", "value": 10}}) == 11
    page = store.find(
        "users",
        {
            "filter": {"field": {"path": "age", "op": "lt", "value": 5}},
            "sort": [{"path": "age", "descending": True}],
            "paging": {"page": {"page": 1, "per_page": 3}},
            "count": True,
        },
    )
    assert [d["body"]["age"] for d in page["items"]] == [4, 3, 2]
    assert page["totalItems"] == 5
    report = store.delete("users", ann["id"])
    assert report
    with pytest.raises(litehouse.NotFoundError):
        store.get("users", ann["id"])


def test_store_errors_are_typed(store):
    store.create_collection("users", SPEC)
    first = store.create("users", {"email": "x@example.com"})
    with pytest.raises(litehouse.ConflictError) as raised:
        store.create("users", {"email": "x@example.com"})
    assert raised.value.conflicting_id == first["id"]
    with pytest.raises(litehouse.ConflictError):
        store.patch("users", first["id"], {"a": 1}, expected_version=7)
    with pytest.raises(litehouse.InvalidInputError):
        store.create_collection("bad name; drop", None)
    with pytest.raises(litehouse.NotFoundError):
        store.find("missing")
    with pytest.raises(litehouse.ParameterError):
        store.find("users", {"filter": {"nonsense": 1}})
    with pytest.raises(litehouse.InvalidInputError):
        store.count("users", {"field": {"path": "age; DROP", "op": "eq", "value": 1}})
    assert store.count("users") == 1
