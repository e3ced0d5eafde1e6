"""The schema transformer and registry (seed 000): the seed's examples as written, every schema feature, bad
records quarantined with their reasons, Arrow in and out, and schema errors named by their place."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pyarrow as pa
import pytest

from etl_platform.transform import ConfigurationError, SchemaRegistry, SchemaTransformer, ValidationError

PROFILE_SCHEMA = {
    "type": "object",
    "required": ["user_id"],
    "properties": {
        "user_id": {"type": "integer", "source": "id"},
        "email": {"type": "string", "source": "contact.email"},
        "signed_up": {"type": "date", "source": "created", "format": "%d/%m/%Y"},
        "seen_at": {"type": "string", "format": "date-time", "source": "@timestamp"},
        "plan": {"type": "string", "default": "free", "enum": ["free", "pro"]},
        "score": {"type": "number"},
        "active": {"type": "boolean", "default": True},
        "address": {"type": "object", "source": "addr",
                    "properties": {"city": {"type": "string", "required": True},
                                   "zip": {"type": "string", "source": "postcode"},
                                   "lat": {"type": "number", "source": "geo.lat"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "orders": {"type": "array", "items": {"type": "object", "properties": {
            "order_id": {"type": "integer", "source": "id"}, "total": {"type": "number"}}}},
    },
}

GOOD = {"id": 1, "contact": {"email": "ann@example.com"}, "created": "17/05/2024",
        "@timestamp": "2024-05-17T10:00:00Z", "score": 9.5, "addr": {"city": "Oslo", "postcode": "0150",
                                                                    "geo": {"lat": 59.9}},
        "tags": ["a", "b"], "orders": [{"id": 7, "total": 10.5}]}
EXPECTED_GOOD = {"user_id": 1, "email": "ann@example.com", "signed_up": date(2024, 5, 17),
                 "seen_at": datetime(2024, 5, 17, 10, tzinfo=timezone.utc), "plan": "free", "score": 9.5,
                 "active": True, "address": {"city": "Oslo", "zip": "0150", "lat": 59.9}, "tags": ["a", "b"],
                 "orders": [{"order_id": 7, "total": 10.5}]}


def normalized(rows):
    """Timestamps compared as instants (DuckDB hands back its own UTC zone object)."""
    return [{k: v.astimezone(timezone.utc) if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]


def test_seed_example_opensearch_records_to_flat_records():
    raw_data = [{"_id": "a1", "@timestamp": "2024-01-01T00:00:00Z", "message": "started", "level": "info"},
                {"_id": "a2", "@timestamp": "2024-01-01T00:00:05Z", "message": "done"}]
    schema = {
        'type': 'object',
        'properties': {
            'log_id': {'type': 'string', 'source': '_id'},
            'timestamp': {'type': 'string', 'source': '@timestamp'},
            'message': {'type': 'string', 'source': 'message'}
        }
    }
    transformer = SchemaTransformer(schema)
    transformed_data = transformer.transform(raw_data)
    assert transformed_data == [
        {"log_id": "a1", "timestamp": "2024-01-01T00:00:00Z", "message": "started"},
        {"log_id": "a2", "timestamp": "2024-01-01T00:00:05Z", "message": "done"},
    ]
    assert transformer.quarantine == []


def test_every_feature_on_records_arrow_can_type():
    """Consistent records go through Arrow's own types: nested paths, objects, arrays of objects, defaults, a
    date format, zone-aware timestamps; a record whose later keys the first lacks keeps them."""
    partial = {"id": 2, "addr": {"city": "Bergen"}, "plan": "pro", "active": False}
    rows = SchemaTransformer(PROFILE_SCHEMA).transform([partial, GOOD])
    assert normalized(rows) == [
        {"user_id": 2, "email": None, "signed_up": None, "seen_at": None, "plan": "pro", "score": None,
         "active": False, "address": {"city": "Bergen", "zip": None, "lat": None}, "tags": None, "orders": None},
        EXPECTED_GOOD,
    ]


def test_bad_records_are_quarantined_with_every_reason_and_the_rest_land():
    """A field that is a number in one record and text in another: the records are read as JSON, and each bad one
    is set aside with its position, all its reasons and its original value."""
    bad = {"id": "two", "created": "2024-05-17", "plan": "gold", "tags": ["x", 3], "addr": {"postcode": "5003"},
           "orders": [{"id": "seven"}], "score": "high"}
    missing_key = {"contact": {"email": "c@x"}, "addr": "Main street 1"}
    transformer = SchemaTransformer(PROFILE_SCHEMA)
    rows = transformer.transform([GOOD, bad, missing_key])
    assert normalized(rows) == [EXPECTED_GOOD]
    assert [q["record"] for q in transformer.quarantine] == [1, 2]
    assert transformer.quarantine[0]["reasons"] == [
        "user_id: value 'two' is not an integer",
        "signed_up: value '2024-05-17' is not a date in the format %d/%m/%Y",
        "plan: value 'gold' is not one of ['free', 'pro']",
        "score: value 'high' is not a number",
        "address.city: required but missing",
    ]
    assert transformer.quarantine[0]["value"] == bad
    assert transformer.quarantine[1]["reasons"] == ["user_id: required but missing",
                                                    "address: value 'Main street 1' is not an object"]


def test_arrow_in_arrow_out_with_types_and_strict_mode():
    table = pa.table({"id": pa.array([1, 2], pa.int64()), "created": ["01/02/2024", "31/02/2024"],
                      "addr": pa.array([{"city": "Oslo", "postcode": "0150"}, {"city": "Rome", "postcode": None}]),
                      "tags": pa.array([["a"], []], pa.list_(pa.string()))})
    transformer = SchemaTransformer(PROFILE_SCHEMA)
    result = transformer.transform(table)
    assert isinstance(result, pa.Table) and result.num_rows == 1
    assert result.schema.field("user_id").type == pa.int64()
    assert result.schema.field("signed_up").type == pa.date32()
    assert pa.types.is_timestamp(result.schema.field("seen_at").type) and result.schema.field("seen_at").type.tz
    assert result.schema.field("address").type == pa.struct([("city", pa.string()), ("zip", pa.string()),
                                                              ("lat", pa.float64())])
    assert transformer.quarantine == [{"record": 1, "reasons": [
        "signed_up: value '31/02/2024' is not a date in the format %d/%m/%Y"],
        "value": {"id": 2, "created": "31/02/2024", "addr": {"city": "Rome", "postcode": None}, "tags": []}}]
    strict = SchemaTransformer(PROFILE_SCHEMA, strict=True)
    with pytest.raises(ValidationError, match=r"1 record\(s\) do not fit the schema: record 1: signed_up: value "
                                              r"'31/02/2024' is not a date"):
        strict.transform(table)


def test_integers_accept_whole_numbers_only_and_numbers_from_text():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "x": {"type": "number"}}}
    transformer = SchemaTransformer(schema)
    assert transformer.transform([{"n": 3.0, "x": " 2.5 "}, {"n": 3.7, "x": "1e3"}]) == [{"n": 3, "x": 2.5}]
    assert transformer.quarantine[0]["reasons"] == ["n: value '3.7' is not an integer"]


def test_registry_and_schema_errors_name_their_place():
    registry = SchemaRegistry()
    registry.register("user_schema", {"type": "object", "properties": {"user_id": {"type": "integer",
                                                                                   "source": "id"}}})
    assert registry.transform("user_schema", [{"id": "5"}, {"id": 6}]) == [{"user_id": 5}, {"user_id": 6}]
    assert registry.names() == ["user_schema"]
    with pytest.raises(ConfigurationError, match="schema 'users' is not registered; registered: user_schema"):
        registry.transform("users", [])
    cases = [
        ({"type": "object", "properties": {"a": {"type": "strng"}}}, r"properties\.a\.type: 'strng' is not one of"),
        ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "date",
                                                                                        "format": "dd-mm"}}}}},
         r"properties\.a\.properties\.b\.format: 'dd-mm' must be a strptime pattern"),
        ({"type": "object", "required": ["b"], "properties": {"a": {"type": "string"}}},
         r"required names \['b'\], which are not properties \(a\)"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, r"properties\.a\.items must say"),
        ({"type": "object", "properties": {"a": {"type": "string", "sorce": "x"}}}, r"unknown key\(s\) \['sorce'\]"),
        ({"type": "object", "properties": {"a": {"type": "string", "source": "x..y"}}}, r"source: 'x\.\.y' is not"),
    ]
    for schema, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            registry.register("bad", schema)
    with pytest.raises(ValidationError, match="record 1 is a str, expected a dict"):
        SchemaTransformer(cases[0][0] | {"properties": {"a": {"type": "string"}}}).transform([{}, "text"])


def test_paths_look_inside_the_readers_json_record_column():
    """The readers of documents (REST, files, MongoDB, OpenSearch, queues) hand each record as a ``_record`` JSON
    column beside columns like ``_id``: paths not found as columns are looked up inside it."""
    table = pa.table({
        "_id": ["a1", "a2"],
        "_record": pa.array(['{"@timestamp": "2024-01-01T00:00:00Z", "user": {"id": "7", "tags": ["x"]}}',
                             '{"@timestamp": "soon", "user": {"id": 8}}'], pa.json_()),
    })
    schema = {"type": "object", "properties": {
        "log_id": {"type": "string", "source": "_id"},
        "at": {"type": "timestamp", "source": "@timestamp"},
        "user_id": {"type": "integer", "source": "user.id"},
        "user": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
    }}
    transformer = SchemaTransformer(schema)
    rows = transformer.transform(table).to_pylist()
    assert normalized(rows) == [{"log_id": "a1", "at": datetime(2024, 1, 1, tzinfo=timezone.utc), "user_id": 7,
                                 "user": {"tags": ["x"]}}]
    assert transformer.quarantine[0]["reasons"] == ["at: value 'soon' is not a timestamp"]
