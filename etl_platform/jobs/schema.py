"""The job file's shape as a typed model: every key and every value's type checked, and a JSON Schema for editors.

``jobs.model`` validates a job file with :class:`JobFile` first (unknown keys, wrong types: ``required: "false"``
is a string, not a boolean; ``enum: "abc"`` is not a list), then checks what a shape cannot say (connector names,
plugins, key columns, paths). ``etl-platform schema job`` prints :func:`job_json_schema`; point an editor's YAML
language server at it (``# yaml-language-server: $schema=job.schema.json``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from etl_platform.transform import ALIASES, TYPES

FieldType = Literal[tuple(sorted({*TYPES, *ALIASES}))]  # type: ignore[valid-type]
Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class FieldSpec(_Strict):
    """One column of the asset."""

    name: str
    type: FieldType = "string"
    required: bool = False
    unique: bool = False
    description: str | None = None
    source: str | None = Field(default=None, description="The record's field it comes from (default: name).")
    format: str | None = None
    enum: list[Scalar] | None = Field(default=None, description="The values allowed.")
    default: Any = None
    classification: str | None = None


class Asset(_Strict):
    name: str | None = None
    fields: list[FieldSpec] = Field(default_factory=list, alias="schema")
    owner: str | None = None
    description: str | None = None
    version: str | int | float | None = None
    tags: list[str] | dict[str, str] | None = None
    domain: str | None = None


class TableRef(_Strict):
    name: str


class Incremental(_Strict):
    cursor_field: str
    lookback: float | None = Field(default=None, ge=0)
    initial_value: Scalar | None = None
    strategy: str | None = None


class Source(_Strict):
    connection: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    objects: list[str | TableRef] | None = None
    tables: list[str | TableRef] | None = None
    query: str | None = None
    incremental: Incremental | None = None
    engine: dict[str, Any] = Field(default_factory=dict)
    custom_reader: str | None = Field(default=None, description="path/to/file.py:ClassName, relative to the job file.")


class Target(_Strict):
    connection: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    format: str | None = None
    compression: str | None = None
    partitioning: list[str] | None = None
    partition_by: list[str] | None = None
    mode: Literal["append", "overwrite", "upsert"] | None = None
    id_columns: list[str] | None = None
    modification_column: str | None = None
    upsert_method: str | None = None
    path: str | None = None
    custom_writer: str | None = Field(default=None, description="path/to/file.py:ClassName, relative to the job file.")
    engine: dict[str, Any] = Field(default_factory=dict)


class Schedule(_Strict):
    cron: str


class JobFile(_Strict):
    """A YAML job (seed 003's form)."""

    tenant_id: str
    environment: str | None = None
    name: str | None = None
    description: str | None = None
    source_connector: str | None = None
    source_connector_path: str | None = None
    target_connector: str | None = None
    target_connector_path: str | None = None
    asset: Asset | str | None = None
    asset_path: str | None = None
    source: Source = Field(default_factory=Source)
    target: Target = Field(default_factory=Target)
    schedule: str | Schedule | None = None


def shape_problems(document: Any, model: type[BaseModel] = JobFile, prefix: tuple = ()) -> list[str]:
    """Every key and type problem of ``document``, each ``<yaml path>: <what is wrong>`` (the value is not shown:
    it may be a secret). ``prefix``: where ``document`` sits in the job (an asset file is the job's ``asset``)."""
    try:
        model.model_validate(document)
    except ValidationError as error:
        return [f"{_path(prefix + item['loc'])}: {_message(item, model)}" for item in _narrowest(error.errors())]
    return []


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model describing the mapping at ``loc`` below ``model`` (through lists and unions), if any."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return None
        candidates, current = [field.annotation], None
        while candidates:
            candidate = candidates.pop()
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
            candidates += list(typing.get_args(candidate))
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _narrowest(errors: list[dict]) -> list[dict]:
    """One error per place. A union (``str | TableRef``) reports each alternative: the alternative's name is dropped
    from the path, and an error is left out when another one goes deeper into the same value (``tables[0].name is
    required`` says more than ``tables[0] must be text``)."""
    found: dict[tuple, dict] = {}
    for item in errors:
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        found.setdefault(loc, {**item, "loc": loc})
    return [item for loc, item in found.items()
            if not any(len(other) > len(loc) and other[:len(loc)] == loc for other in found)]


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or part[:1].isupper()
                                      or part.startswith(("list[", "dict[", "literal[")))


def _path(loc: tuple) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + ("schema" if part == "fields" else str(part))
    return text or "file"


def _message(item: dict, model: type[BaseModel]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, item["loc"][:-1])
        keys = sorted(f.alias or name for name, f in owner.model_fields.items()) if owner else []
        return "unknown key" + (f"; allowed: {', '.join(keys)}" if keys else "")
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        return f"must be one of {item['ctx']['expected']}"
    expected = {"bool_type": "true or false", "string_type": "text", "list_type": "a list",
                "dict_type": "a mapping", "int_type": "a whole number", "float_type": "a number",
                "model_type": "a mapping", "model_attributes_type": "a mapping"}.get(kind)
    if expected:
        return f"must be {expected}, not {type(item.get('input')).__name__}"
    return item["msg"]


def job_json_schema() -> dict:
    """The JSON Schema of a job file (for editors)."""
    schema = JobFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "etl_platform YAML job"
    return schema
