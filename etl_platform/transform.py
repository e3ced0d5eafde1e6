"""Seed 000's schema transformer and registry, compiled to one DuckDB query over Arrow.

    from etl_platform.transform import SchemaTransformer, SchemaRegistry

    schema = {
        "type": "object",
        "required": ["user_id"],
        "properties": {
            "user_id": {"type": "integer", "source": "id"},
            "email": {"type": "string", "source": "contact.email"},           # a dotted path into nested data
            "signed_up": {"type": "date", "source": "created", "format": "%d/%m/%Y"},
            "seen_at": {"type": "string", "format": "date-time", "source": "@timestamp"},
            "plan": {"type": "string", "default": "free", "enum": ["free", "pro"]},
            "address": {"type": "object", "source": "addr",
                        "properties": {"city": {"type": "string"}, "zip": {"type": "string", "source": "postcode"}}},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    transformer = SchemaTransformer(schema)
    rows = transformer.transform(raw_data)          # list of dicts in → list of dicts out; Arrow in → Arrow out
    transformer.quarantine                          # [{'record': 3, 'reasons': ['user_id: value 'x' is not an integer'], 'value': {...}}]

Types: ``string``, ``integer``, ``number``, ``boolean``, ``date``, ``timestamp`` (also JSON Schema's ``string`` with
``format: date`` / ``date-time``), ``object`` (``properties``), ``array`` (``items``). ``source`` is a dotted path
(default: the property's name; a key holding dots or starting with ``@`` or ``_`` is found as written); inside an
object, paths are relative to the object's source. ``format`` on a date/timestamp is a strptime pattern for text
(``%d/%m/%Y``); ``default`` fills a missing (NULL or absent) value; ``required`` (a list on the object, or
``required: true`` on the property) and ``enum`` are checked after conversion.

The schema is compiled once per input schema into SQL; the records are never looped over in Python. A record
that cannot be converted — a value that is not of its type, a required field missing, a value outside the enum —
is not in the output: it goes to ``quarantine`` with the record's position, every reason (field and value) and
the record itself. ``strict=True`` raises ``ValidationError`` naming them instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from etl_platform.destinations.tables import table_of_records
from etl_platform.errors import ConfigurationError, ValidationError
from etl_platform.warehouse.arrow import arrow_table
from etl_platform.warehouse.base import sql_string as _text

__all__ = ["SchemaTransformer", "SchemaRegistry", "ConfigurationError", "ValidationError"]

SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE",
             "timestamp": "TIMESTAMPTZ"}
TYPES = (*SQL_TYPES, "object", "array")
ALIASES = {"datetime": "timestamp", "date-time": "timestamp", "float": "number", "int": "integer", "bool": "boolean",
           "str": "string"}
PROPERTY_KEYS = {"type", "source", "default", "required", "format", "enum", "properties", "items", "description",
                 "title"}
REASONS, JSON_COLUMN = "__etl_reasons", "__etl_json"
RECORD_COLUMN = "_record"  # the readers' whole-document JSON column (REST, files, MongoDB, OpenSearch, queues)
SHOWN_VALUE = 80  # characters of a bad value quoted in a reason


@dataclass(frozen=True)
class _Field:
    """One property of the schema, validated: its output name, type, where it comes from, its rules."""

    name: str
    type: str
    source: tuple[str, ...]
    where: str  # the property's place in the schema, for messages: properties.address.properties.city
    label: str  # the property's place in a record, for reasons: address.city
    default: Any = None
    required: bool = False
    format: str | None = None
    enum: tuple | None = None
    children: tuple[_Field, ...] = ()
    items: _Field | None = None


def _parse_object(schema: Mapping, where: str, label: str) -> tuple[_Field, ...]:
    if not isinstance(schema, Mapping):
        raise ConfigurationError(f"schema: {where or 'the schema'} must be a mapping, not {type(schema).__name__}")
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise ConfigurationError(f"schema: {where + '.' if where else ''}properties must be a non-empty mapping")
    required = schema.get("required") or []
    if not isinstance(required, list) or any(name not in properties for name in required):
        unknown = [name for name in required if name not in properties] if isinstance(required, list) else required
        raise ConfigurationError(f"schema: {where + '.' if where else ''}required names {unknown!r}, which are not "
                                 f"properties ({', '.join(properties)})")
    prefix = f"{where}.properties" if where else "properties"
    return tuple(_parse_property(name, spec, f"{prefix}.{name}", f"{label}{name}", name in required)
                 for name, spec in properties.items())


def _parse_property(name: str, spec: Any, where: str, label: str, listed_required: bool) -> _Field:
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"schema: {where} must be a mapping like {{'type': 'string'}}, not {spec!r}")
    unknown = sorted(set(spec) - PROPERTY_KEYS)
    if unknown:
        raise ConfigurationError(f"schema: {where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(PROPERTY_KEYS))}")
    kind = ALIASES.get(spec.get("type"), spec.get("type"))
    if kind == "string" and spec.get("format") in ("date", "date-time"):
        kind = "date" if spec["format"] == "date" else "timestamp"
    if kind not in TYPES:
        raise ConfigurationError(f"schema: {where}.type: {spec.get('type')!r} is not one of {', '.join(TYPES)}")
    source = spec.get("source", name)
    if not isinstance(source, str) or not source or any(not part for part in source.split(".")):
        raise ConfigurationError(f"schema: {where}.source: {source!r} is not a dotted path like contact.email")
    pattern = spec.get("format")
    if pattern in ("date", "date-time"):
        pattern = None
    if pattern is not None and (kind not in ("date", "timestamp") or not isinstance(pattern, str) or "%" not in pattern):
        raise ConfigurationError(f"schema: {where}.format: {pattern!r} must be a strptime pattern like '%d/%m/%Y' "
                                 "on a date or timestamp")
    enum = spec.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum or kind in ("object", "array")):
        raise ConfigurationError(f"schema: {where}.enum must be a non-empty list of values of a scalar property")
    children, items = (), None
    if kind == "object":
        children = _parse_object(spec, where, f"{label}.")
    if kind == "array":
        if not isinstance(spec.get("items"), Mapping):
            raise ConfigurationError(f"schema: {where}.items must say the elements' type, e.g. {{'type': 'string'}}")
        items = _parse_property(name, {**spec["items"], "source": name}, f"{where}.items", f"{label}[]", False)
    return _Field(name, kind, tuple(source.split(".")) if source not in ("_id",) else (source,), where, label,
                  spec.get("default"), bool(spec.get("required")) or listed_required, pattern,
                  tuple(enum) if enum else None, children, items)


# ---------------------------------------------------------------- compiling to SQL


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any, field: _Field) -> str:
    if value is None:
        return "NULL"
    if field.type in ("object", "array"):
        return f"CAST({_text(json.dumps(value))} AS JSON)"
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, bool) else str(value)
    return f"CAST({_text(text)} AS {SQL_TYPES[field.type]})"


class _Compiler:
    """Builds the SELECT of one transform: value expressions and the reasons a record is refused.

    ``mode`` is ``arrow`` (the input's columns and structs, read by their Arrow types) or ``json`` (one JSON text
    column per record, for records Arrow cannot type: a field that is a number here and text there)."""

    def __init__(self, schema: pa.Schema | None):
        self.schema = schema
        self.reasons: list[tuple[str, str]] = []
        self.slots: list[str] = []

    # Where a value comes from: a SQL expression and its Arrow type (None in json mode: JSON text).
    def resolve(self, base: tuple[str, pa.DataType | None] | None, path: tuple[str, ...]):
        """``(SQL, Arrow type)`` of the value at ``path`` below ``base`` (None: the record); the type is None for a
        value inside JSON (a JSON column such as the readers' ``_record``, or json mode)."""
        if base is None:
            if self.schema is None:  # json mode: the whole record is one JSON text
                base = (JSON_COLUMN, None)
            else:
                joined = ".".join(path)
                if joined in self.schema.names:  # a column named with dots, '@timestamp', '_id'
                    return _quote(joined), _arrow_or_json(self.schema.field(joined).type)
                if path[0] in self.schema.names:
                    base = (_quote(path[0]), _arrow_or_json(self.schema.field(path[0]).type))
                    path = path[1:]
                elif RECORD_COLUMN in self.schema.names and \
                        _arrow_or_json(self.schema.field(RECORD_COLUMN).type) is None:
                    base = (_quote(RECORD_COLUMN), None)  # a reader's whole document as JSON: look inside it
                else:
                    return "NULL", pa.null()
        expression, kind = base
        for number, part in enumerate(path):
            if kind is None:  # inside JSON: the rest of the path in one JSON path
                rest = path[number:]
                return f"json_extract({expression}, {_text('$.' + '.'.join(_quote(p) for p in rest))})", None
            if not pa.types.is_struct(kind) or kind.get_field_index(part) < 0:
                return "NULL", pa.null()
            expression, kind = f"struct_extract({expression}, {_text(part)})", _arrow_or_json(kind.field(part).type)
        return expression, kind

    def reason(self, condition: str, message: str) -> None:
        """A rule: when ``condition`` holds (outer query), the record is refused with ``message``."""
        self.reasons.append((condition, message))

    def slot(self, expression: str) -> str:
        """``expression`` computed once, in the inner query; the outer query refers to it by this name."""
        name = f"__etl_{len(self.slots)}"
        self.slots.append(f"{expression} AS {name}")
        return name

    def value(self, field: _Field, base, guard: str | None) -> str:
        """The SQL of ``field``'s output value (outer query); appends the reasons it can be refused (only when
        ``guard``, the condition that its parent is present, holds). Raw and converted values are slots of the
        inner query, so each conversion runs once per record however many rules look at it."""
        raw_sql, raw_type = self.resolve(base, field.source)
        path = ()
        raw = self.slot(raw_sql)
        present = f"{raw} IS NOT NULL" + (" AND json_type(" + raw + ") <> 'NULL'" if raw_type is None else "")
        default = _literal(field.default, field)
        when = f"({guard}) AND " if guard else ""
        if field.type == "object":
            not_object = f"json_type({raw}) <> 'OBJECT'" if raw_type is None else \
                ("false" if pa.types.is_struct(raw_type) else "true")
            self.reason(f"{when}{present} AND {not_object}",
                        f"printf('%s: value %s is not an object', {_text(field.label)}, {_shown(raw, raw_type)})")
            inner_guard = f"{when}{present} AND NOT ({not_object})"  # inner rules only inside a real object
            members = ", ".join(f"{_quote(child.name)} := {self.value(child, (raw_sql, raw_type), inner_guard)}"
                                for child in field.children)
            value = f"CASE WHEN {present} THEN struct_pack({members}) ELSE {default} END"
        else:
            converted = self.slot(self.convert(field, raw_sql, raw_type, path))
            value = converted if field.default is None else f"CASE WHEN {present} THEN {converted} ELSE {default} END"
        if field.type not in ("object", "array") and not _never_fails(field, raw_type):
            expected = _article(field.type) + (f" in the format {field.format}" if field.format else "")
            self.reason(f"{when}{present} AND {converted} IS NULL",
                        f"printf('%s: value %s is not {_escape_printf(expected)}', {_text(field.label)}, "
                        f"{_shown(raw, raw_type)})")
        elif field.type == "array" and field.items.type not in ("object", "array") and not (
                raw_type is not None and (pa.types.is_list(raw_type) or pa.types.is_large_list(raw_type))
                and _never_fails(field.items, raw_type.value_type)):
            inner_converted = self.convert(field, raw_sql, raw_type, path)
            failed = self.slot(f"len(list_filter({inner_converted}, lambda x: x IS NULL)) - "
                               f"len(list_filter({self.elements(raw_sql, raw_type)}, lambda x: x IS NULL))")
            self.reason(f"{when}{present} AND {converted} IS NULL",
                        f"printf('%s: value %s is not a list', {_text(field.label)}, {_shown(raw, raw_type)})")
            self.reason(f"{when}{present} AND {failed} > 0",
                        f"printf('%s: %d element(s) are not {_article(field.items.type)}', {_text(field.label)}, "
                        f"{failed})")
        if field.enum is not None:
            allowed = ", ".join(_literal(v, field) for v in field.enum)
            self.reason(f"{when}({value}) IS NOT NULL AND NOT list_contains([{allowed}], {value})",
                        f"printf('%s: value %s is not one of {_escape_printf(repr(list(field.enum)))}', "
                        f"{_text(field.label)}, {_shown(raw, raw_type)})")
        if field.required:
            self.reason(f"{when}({value}) IS NULL AND NOT ({present})", _text(field.label + ": required but missing"))
        return value

    def elements(self, raw: str, raw_type) -> str:
        if raw_type is None:  # JSON nulls inside the array count as NULL elements
            return f"list_transform(CAST({raw} AS JSON[]), lambda x: CASE WHEN json_type(x) <> 'NULL' THEN x END)"
        if pa.types.is_list(raw_type) or pa.types.is_large_list(raw_type):
            return raw
        return "NULL"

    def convert(self, field: _Field, raw: str, raw_type, path: tuple[str, ...]) -> str:
        """``raw`` as the field's type: NULL where it cannot be (that NULL, beside a present raw, is a reason)."""
        if field.type == "object":
            return raw
        if field.type == "array":
            items = field.items
            if raw_type is None:
                source = f"CAST({raw} AS JSON[])"
                element = self.convert(items, "x", None, ())
            elif pa.types.is_list(raw_type) or pa.types.is_large_list(raw_type):
                source, element = raw, self.convert(items, "x", raw_type.value_type, ())
            else:
                return "NULL"
            if items.type == "object":
                members = ", ".join(
                    f"{_quote(child.name)} := "
                    f"{self.convert(child, *self._member('x', None if raw_type is None else raw_type.value_type, child))}"
                    for child in items.children)
                element = f"CASE WHEN x IS NOT NULL THEN struct_pack({members}) END"
            return f"list_transform({source}, lambda x: {element})"
        if raw_type is None:  # JSON: the text of a scalar, or the JSON of an object/array
            text = f"json_extract_string({raw}, '$')"
            return self.scalar(field, text, pa.string(), json_value=raw)
        return self.scalar(field, raw, raw_type)

    def _member(self, element: str, element_type, child: _Field):
        if element_type is None:
            return f"json_extract({element}, {_text('$.' + '.'.join(_quote(p) for p in child.source))})", None, ()
        expression, kind = self.resolve((element, element_type), child.source)
        return expression, kind, ()

    def scalar(self, field: _Field, raw: str, raw_type: pa.DataType, json_value: str | None = None) -> str:
        t = pa.types
        if field.type == "string":
            if json_value is not None:
                return f"CASE WHEN json_type({json_value}) IN ('OBJECT', 'ARRAY') THEN CAST({json_value} AS VARCHAR) " \
                       f"ELSE {raw} END"
            if t.is_struct(raw_type) or t.is_list(raw_type) or t.is_large_list(raw_type) or t.is_map(raw_type):
                return f"CAST(to_json({raw}) AS VARCHAR)"
            return f"CAST({raw} AS VARCHAR)"
        if field.type == "integer":
            if t.is_floating(raw_type) or t.is_decimal(raw_type):  # 3.0 is an integer, 3.7 is not
                return f"CASE WHEN {raw} = trunc({raw}) THEN TRY_CAST({raw} AS BIGINT) END"
            if t.is_string(raw_type) or t.is_large_string(raw_type):
                return f"TRY_CAST(trim({raw}) AS BIGINT)"
            return f"TRY_CAST({raw} AS BIGINT)"
        if field.type in ("number", "boolean"):
            inner = f"trim({raw})" if t.is_string(raw_type) or t.is_large_string(raw_type) else raw
            return f"TRY_CAST({inner} AS {SQL_TYPES[field.type]})"
        # date, timestamp
        target = SQL_TYPES[field.type]
        if field.format and (t.is_string(raw_type) or t.is_large_string(raw_type)):
            return f"CAST(try_strptime({raw}, {_text(field.format)}) AS {target})"
        return f"TRY_CAST({raw} AS {target})"


def _never_fails(field: _Field, raw_type) -> bool:
    """Whether converting a value of Arrow type ``raw_type`` to ``field``'s type cannot fail (so no rule is needed)."""
    if raw_type is None:
        return False
    t = pa.types
    return (field.type == "string" or t.is_null(raw_type)
            or (field.type == "integer" and t.is_integer(raw_type) and not t.is_uint64(raw_type))
            or (field.type == "number" and (t.is_integer(raw_type) or t.is_floating(raw_type)))
            or (field.type == "boolean" and t.is_boolean(raw_type))
            or (field.type == "date" and (t.is_date(raw_type) or t.is_timestamp(raw_type)))
            or (field.type == "timestamp" and (t.is_timestamp(raw_type) or t.is_date(raw_type))))


def _arrow_or_json(kind: pa.DataType) -> pa.DataType | None:
    """None for a JSON column (read by JSON paths), else the Arrow type."""
    return None if isinstance(kind, pa.JsonType) else kind


def _article(kind: str) -> str:
    return {"integer": "an integer", "number": "a number", "boolean": "a boolean", "date": "a date",
            "timestamp": "a timestamp", "string": "a string"}[kind]


def _escape_printf(text: str) -> str:
    return text.replace("%", "%%").replace("'", "''")


def _shown(raw: str, raw_type) -> str:
    """A bad value as quoted in a reason: its text (JSON for JSON input), cut to 80 characters."""
    text = f"CAST({raw} AS VARCHAR)" if raw_type is not None else \
        f"(CASE WHEN json_type({raw}) = 'VARCHAR' THEN json_extract_string({raw}, '$') ELSE CAST({raw} AS VARCHAR) END)"
    return f"CASE WHEN length({text}) > {SHOWN_VALUE} THEN left({text}, {SHOWN_VALUE}) || '…' ELSE " \
           f"'''' || {text} || '''' END"


# ---------------------------------------------------------------- the public API


_ENGINE: duckdb.DuckDBPyConnection | None = None
_ENGINE_LOCK = threading.Lock()


def _cursor() -> duckdb.DuckDBPyConnection:
    """A cursor of one in-memory DuckDB kept for transforms (opening a database costs ~30 ms, a cursor < 1 ms)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = duckdb.connect()
            _ENGINE.execute("SET TimeZone = 'UTC'")  # a timestamp text without a zone is taken as UTC
        return _ENGINE.cursor()


class SchemaTransformer:
    """Maps records to ``schema`` (seed 000's form; see the module docstring) with one SQL query per call."""

    def __init__(self, schema: Mapping, strict: bool = False):
        if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
            raise ConfigurationError("schema: the top level must be {'type': 'object', 'properties': {...}}")
        self.schema = schema
        self.strict = strict
        self.fields = _parse_object(schema, "", "")
        self.quarantine: list[dict[str, Any]] = []
        self._queries: dict[Any, str] = {}

    @property
    def output_names(self) -> list[str]:
        return [field.name for field in self.fields]

    def sql(self, input_schema: pa.Schema | None) -> str:
        """The query over the relation ``records`` (Arrow columns, or one JSON column when ``input_schema`` is
        None): the output columns and ``__etl_reasons``."""
        key = None if input_schema is None else input_schema
        if key not in self._queries:
            compiler = _Compiler(input_schema)
            values = [f"{compiler.value(field, None, None)} AS {_quote(field.name)}" for field in self.fields]
            # The list of reasons is built only for records that break a rule: most records pay for the conditions.
            failed = " OR ".join(f"coalesce({condition}, false)" for condition, _ in compiler.reasons) or "false"
            messages = ", ".join(f"CASE WHEN {condition} THEN {message} END" for condition, message in compiler.reasons)
            reasons = (f"CASE WHEN {failed} THEN list_filter([{messages}], lambda r: r IS NOT NULL) "
                       f"ELSE CAST([] AS VARCHAR[]) END") if compiler.reasons else "CAST([] AS VARCHAR[])"
            self._queries[key] = (f"SELECT {', '.join(values)}, {reasons} AS {REASONS} "
                                  f"FROM (SELECT {', '.join(compiler.slots)} FROM records)")
        return self._queries[key]

    def transform_table(self, data: Any) -> tuple[pa.Table, pa.Table]:
        """``(good rows, quarantined rows)`` as Arrow: the quarantine has ``record`` (position in the input),
        ``reasons`` (list of text) and ``value`` (the record as JSON text)."""
        table, json_mode, originals = _as_input(data)
        cursor = _cursor()
        try:
            cursor.register("records", table)
            try:
                result = arrow_table(cursor.sql(self.sql(None if json_mode else table.schema)))
            except duckdb.Error as error:
                raise ValidationError(f"schema transform failed: {str(error).splitlines()[0][:300]}") from error
        finally:
            cursor.close()
        reasons = result[REASONS]
        bad = pc.greater(pc.list_value_length(reasons), 0)
        good = result.filter(pc.invert(bad)).drop_columns([REASONS])
        positions = pc.indices_nonzero(bad)
        values = [json.dumps(originals(int(p)), default=str, ensure_ascii=False) for p in positions.to_pylist()]
        quarantined = pa.table({"record": pa.array(positions, pa.int64()),
                                "reasons": result[REASONS].take(positions),
                                "value": pa.array(values, pa.string())})
        return good, quarantined

    def transform(self, data: Any) -> Any:
        """Records in seed 000's form (a list of dicts) → a list of dicts; a pyarrow Table / RecordBatch → a Table;
        a pandas DataFrame → a DataFrame. Refused records are in ``self.quarantine`` (or raise, ``strict``)."""
        good, quarantined = self.transform_table(data)
        self.quarantine = quarantined.to_pylist()
        for entry in self.quarantine:
            entry["value"] = json.loads(entry["value"])
        if self.quarantine and self.strict:
            shown = "; ".join(f"record {q['record']}: {', '.join(q['reasons'])}" for q in self.quarantine[:5])
            raise ValidationError(f"{len(self.quarantine):,} record(s) do not fit the schema: {shown}"
                                  + (" ..." if len(self.quarantine) > 5 else ""))
        if isinstance(data, list):
            return good.to_pylist()
        if type(data).__module__.startswith("pandas"):
            return good.to_pandas()
        return good


def _as_input(data: Any):
    """``(Arrow table, json mode, record at position -> its original value)``."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return data, False, lambda p: data.slice(p, 1).to_pylist()[0]
    if type(data).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(data, preserve_index=False)
        return table, False, lambda p: table.slice(p, 1).to_pylist()[0]
    if not isinstance(data, list):
        raise ValidationError(f"cannot transform a {type(data).__name__}: expected a list of dicts, a pyarrow Table "
                              "or a pandas DataFrame")
    bad = next((i for i, record in enumerate(data) if not isinstance(record, Mapping)), None)
    if bad is not None:
        raise ValidationError(f"record {bad} is a {type(data[bad]).__name__}, expected a dict")
    try:
        return table_of_records(data), False, lambda p: data[p]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, OverflowError):
        # Arrow cannot type a field that holds a number here and text there: read each record as JSON instead.
        texts = [json.dumps(record, default=str, ensure_ascii=False) for record in data]
        return pa.table({JSON_COLUMN: pa.array(texts, pa.string())}), True, lambda p: data[p]


class SchemaRegistry:
    """Named schemas: ``register(name, schema)`` (validated then), ``transform(name, records)``."""

    def __init__(self):
        self._transformers: dict[str, SchemaTransformer] = {}

    def register(self, name: str, schema: Mapping, strict: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"schema name {name!r} must be a non-empty text")
        self._transformers[name] = SchemaTransformer(schema, strict=strict)

    def get(self, name: str) -> SchemaTransformer:
        if name not in self._transformers:
            raise ConfigurationError(f"schema {name!r} is not registered; registered: "
                                     f"{', '.join(sorted(self._transformers)) or 'none'}")
        return self._transformers[name]

    def names(self) -> list[str]:
        return sorted(self._transformers)

    def transform(self, name: str, data: Any) -> Any:
        return self.get(name).transform(data)

    def quarantine(self, name: str) -> list[dict[str, Any]]:
        """The records the last ``transform(name, ...)`` refused."""
        return self.get(name).quarantine
