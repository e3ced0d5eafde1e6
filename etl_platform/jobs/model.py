"""A YAML job (seed 003), read and validated: every problem named with its YAML path, secrets never shown.

    tenant_id: acme
    environment: prod
    source_connector: postgres             # a built-in reader type (etl_platform.sources.SOURCES)
    target_connector: s3                   # a built-in destination type (etl_platform.destinations.registry)
    asset:                                 # or asset_path: assets/users.yaml
      name: users
      owner: team:crm
      description: Users of the CRM
      schema:
        - {name: user_id, type: integer, required: true, unique: true}
        - {name: email, type: string, source: contact_email}
        - {name: signed_up, type: date}
    source:
      connection: {host: 127.0.0.1, database: crm, user: etl}
      credentials: {password: "${CRM_PASSWORD}"}
      tables: [{name: users}]              # or objects: [...], or query: "SELECT ..."
      incremental: {cursor_field: updated_at, lookback: 3600}
      engine: {options: {batch_size: 50000}}
      custom_reader: plugins/reader.py:MyReader      # instead of source_connector
    target:
      connection: {bucket: lake, prefix: crm}
      format: parquet
      partitioning: [signed_up]
      mode: upsert                         # append, overwrite, upsert (with id_columns)
      id_columns: [user_id]
      custom_writer: plugins/writer.py:MyWriter      # instead of target_connector
    schedule: "0 * * * *"                  # cron, or {cron: "0 * * * *"}

``${VAR}`` reads the environment (a missing variable is an error naming it and its YAML path). Keys and value
types are checked by a typed model (``jobs/schema.py``: ``etl-platform schema job`` prints its JSON Schema);
the rules a shape cannot state are checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from etl_platform.config_files import expand_env, name_variables
from etl_platform.errors import ConfigurationError
from etl_platform.jobs.schema import Asset, shape_problems
from etl_platform.plugins import (
    BaseReader,
    BaseWriter,
    Section,
    SourceConfig,
    TargetConfig,
    check_plugin_source,
    load_plugin,
    plugin_keeps_state,
)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
QUALIFIED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
MODES = ("append", "overwrite", "upsert")


class JobProblems(ConfigurationError):
    """Every problem of a job file, each ``<file>: <yaml path>: <what is wrong>``."""

    def __init__(self, path: Path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class JobSpec:
    path: Path
    name: str
    tenant_id: str
    environment: str
    source_type: str  # a SOURCES name, or "custom"
    target_type: str  # a DESTINATIONS name, or "custom"
    asset: Section
    source: SourceConfig
    target: TargetConfig
    schedule: str | None = None
    objects: tuple[str | None, ...] = (None,)
    reader_class: type | None = None
    writer_class: type | None = None
    description: str = ""
    fields: tuple[dict, ...] = field(default_factory=tuple)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def transform_schema(self) -> dict | None:
        """The asset's fields as a ``SchemaTransformer`` schema (None when the asset declares none)."""
        if not self.fields:
            return None
        properties = {}
        for item in self.fields:
            spec = {"type": item.get("type", "string"), "source": item.get("source", item["name"]),
                    "required": bool(item.get("required"))}
            spec.update({k: item[k] for k in ("format", "enum", "default") if k in item})
            properties[item["name"]] = spec
        return {"type": "object", "properties": properties}

    def object_name(self, obj: str | None) -> str | None:
        """What ``obj`` is called in its asset key, its folder and its place in the target when the job reads
        several objects (:func:`object_name`); None when it reads one (the job's own name is used)."""
        return object_name(obj) if obj is not None and len(self.objects) > 1 else None

    def write_mode(self) -> str:
        return write_mode(self.target, self.source, source_delivers(self.source_type))

    def key_columns(self) -> list[str]:
        return key_columns(self.target, self.fields, source_delivers(self.source_type))

    def reads_everything(self) -> bool:
        """Whether a run reads the source from the beginning, whatever its saved state: an overwrite makes the
        target what one run read, so that run reads everything (a files source every file, a reader plugin from
        an empty state), else the unchanged rest would leave the target."""
        return self.write_mode() == "overwrite"


def object_name(obj: str) -> str:
    """An object's name as a key, folder or collection: dots as _ (``crm.users`` -> ``crm_users``)."""
    return obj.replace(".", "_")


def source_delivers(source_type: str) -> str:
    """What a run of the built-in reader ``source_type`` delivers after the first (``Source.delivers``: "object",
    "changed_files" or "messages"); a reader plugin's runs are "object" (its own state: ``_plugin_state_rule``)."""
    from etl_platform import sources

    class_name = sources.SOURCE_CLASSES.get(source_type)
    return getattr(sources, class_name).delivers if class_name else "object"  # imports that one reader only


def write_mode(target: Mapping[str, Any], source: Mapping[str, Any], delivers: str = "object") -> str:
    """``target.mode``; by default ``upsert`` for an incremental read (it re-reads the rows at its mark) and for a
    queue's messages (by their ``_message_id``: a message redelivered after a kill lands once), else
    ``overwrite`` (the target is what the run read: everything, ``JobSpec.reads_everything``)."""
    return target.get("mode") or ("upsert" if source.get("incremental") or delivers == "messages" else "overwrite")


def key_columns(target: Mapping[str, Any], fields, delivers: str = "object") -> list[str]:
    """The target's key: ``target.id_columns``, else the asset's ``unique`` fields, else for a queue's messages
    their ``_message_id`` (the identity the source gives)."""
    from etl_platform.sources.base import MESSAGE_ID_COLUMN

    declared = target.get("id_columns") or [f.get("name") for f in fields or () if isinstance(f, dict)
                                              and f.get("unique")]
    return list(declared or ([MESSAGE_ID_COLUMN] if delivers == "messages" else []))


def _problem(problems: list[str], where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def load_job(path: str | Path) -> JobSpec:
    """The job at ``path``, validated, its plugins imported; raises ``JobProblems`` listing every problem."""
    path = Path(path).resolve()
    problems: list[str] = []
    substituted: dict[str, str] = {}
    spec = _read(path, problems, substituted, import_plugins=True)
    if problems:
        raise JobProblems(path, [name_variables(p, substituted) for p in problems])
    return spec


def validate_job(path: str | Path) -> list[str]:
    """Every problem of the job at ``path`` (empty: it is valid). Nothing runs, nothing connects, no plugin is
    imported (its file is read). A value taken from ``${VAR}`` is shown as ``${VAR}``, never as itself."""
    problems: list[str] = []
    substituted: dict[str, str] = {}
    _read(Path(path).resolve(), problems, substituted, import_plugins=False)
    return [name_variables(p, substituted) for p in problems]


def _mapping(value: Any, where: str, problems: list[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _problem(problems, where, f"must be a mapping, not {type(value).__name__}")
        return {}
    return value


def _read(path: Path, problems: list[str], substituted: dict[str, str], import_plugins: bool) -> JobSpec | None:
    if not path.is_file():
        _problem(problems, "file", f"{path} does not exist")
        return None
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        _problem(problems, "file", f"not valid YAML: {str(error).splitlines()[0]}")
        return None
    if not isinstance(document, dict):
        _problem(problems, "file", "must hold a mapping (tenant_id:, source:, target:, ...)")
        return None
    try:
        document = expand_env(document, str(path), "", ConfigurationError, substituted)
    except ConfigurationError as error:  # "<file>: source.credentials.password uses ${X}, but ... X is not set"
        problems.append(str(error).split(": ", 1)[-1])
        return None
    shape = shape_problems(document)  # keys and types (jobs/schema.py); the rules below need the shape right
    problems += shape
    tenant = document.get("tenant_id")
    if not isinstance(tenant, str) or not IDENTIFIER.fullmatch(tenant):
        _problem(problems, "tenant_id", f"{tenant!r} must be a name of letters, digits and _")
    environment = str(document.get("environment") or "default")

    asset = _asset(document, path, problems, substituted)
    source = _mapping(document.get("source"), "source", problems)
    target = _mapping(document.get("target"), "target", problems)
    for side, section in (("source", source), ("target", target)):
        _apply_connector_file(document, side, section, path, problems, substituted)

    source_type, reader_class = _connector(document, source, "source", path, problems, import_plugins)
    target_type, writer_class = _connector(document, target, "target", path, problems, import_plugins)
    objects = _objects(source, source_type, problems)
    delivers = source_delivers(source_type)
    _target_rules(target, asset, source, delivers, problems)
    _one_place_per_overwritten_object(target_type, target, write_mode(target, source, delivers), objects, problems)
    _plugin_state_rule(source, target, path, problems)
    schedule = _schedule(document.get("schedule"), problems)
    name = document.get("name") or asset.get("name") or path.stem
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        _problem(problems, "name" if document.get("name") else "asset.name",
                 f"{name!r} must be a name of letters, digits and _ (it names the job's assets)")
    problems[:] = _one_per_place(problems, shape)
    if problems:
        return None
    return JobSpec(path, name, tenant, environment, source_type, target_type, Section(asset),
                   SourceConfig(source, type=source_type), TargetConfig(target, type=target_type), schedule, objects,
                   reader_class, writer_class,
                   str(document.get("description") or asset.get("description") or ""),
                   tuple(asset.get("schema") or ()))


def _one_per_place(problems: list[str], shape: list[str]) -> list[str]:
    """One message per place: where the shape found a problem (at a place or below it), a rule's message about
    that place says nothing more and is left out."""
    shaped = [problem.split(": ", 1)[0] for problem in shape]

    def covered(problem: str) -> bool:
        place = problem.split(": ", 1)[0]
        return any(found == place or found.startswith((place + ".", place + "[")) for found in shaped)

    return [problem for problem in problems if problem in shape or not covered(problem)]


CONNECTOR_KEYS = {"type", "connection", "credentials", "engine", "description"}


def _apply_connector_file(document: dict, side: str, section: dict, path: Path, problems: list[str],
                          substituted: dict[str, str]) -> None:
    """``<side>_connector_path``: a shared connector file (``type``, ``connection``, ``credentials``, ``engine``)
    whose settings the job's own ``<side>`` section overrides key by key; its ``type`` is the connector's."""
    where = f"{side}_connector_path"
    if not document.get(where):
        return
    file = (path.parent / str(document[where])).resolve()
    if not file.is_file():
        _problem(problems, where, f"{file} does not exist")
        return
    try:
        connector = expand_env(yaml.safe_load(file.read_text(encoding="utf-8")) or {}, str(file),
                               substituted=substituted)
    except (yaml.YAMLError, ConfigurationError) as error:
        _problem(problems, where, f"{file}: {str(error).splitlines()[0]}")
        return
    if not isinstance(connector, dict):
        _problem(problems, where, f"{file} must hold a mapping (type:, connection:, credentials:)")
        return
    for key in sorted(set(connector) - CONNECTOR_KEYS):
        _problem(problems, f"{where} ({file.name}).{key}", f"unknown key; allowed: {', '.join(sorted(CONNECTOR_KEYS))}")
    kind = connector.get("type")
    named = document.get(f"{side}_connector")
    if kind and named and kind != named:
        _problem(problems, f"{side}_connector", f"{named!r} but {file.name} is a {kind!r} connector")
    if kind and not named:
        document[f"{side}_connector"] = kind
    for part in ("connection", "credentials", "engine"):
        shared = connector.get(part)
        if isinstance(shared, dict):
            own = section.get(part) if isinstance(section.get(part), dict) else {}
            section[part] = {**shared, **own}


def _asset(document: dict, path: Path, problems: list[str], substituted: dict[str, str]) -> dict:
    asset = document.get("asset")
    if document.get("asset_path") and isinstance(document["asset_path"], str):
        asset_file = (path.parent / str(document["asset_path"])).resolve()
        if not asset_file.is_file():
            _problem(problems, "asset_path", f"{asset_file} does not exist")
            return {}
        try:
            asset = expand_env(yaml.safe_load(asset_file.read_text(encoding="utf-8")), str(asset_file),
                               substituted=substituted)
        except (yaml.YAMLError, ConfigurationError) as error:
            _problem(problems, "asset_path", f"{asset_file}: {str(error).splitlines()[0]}")
            return {}
        problems += shape_problems(asset, Asset, ("asset",))
    if isinstance(asset, str):  # seed 003 names the asset and keeps its definition in asset_path
        asset = {"name": asset}
    asset = _mapping(asset, "asset", problems)
    schema = asset.get("schema") or []
    if not isinstance(schema, list):
        return asset  # the shape says so
    seen = set()
    for number, item in enumerate(schema):
        where = f"asset.schema[{number}]"
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            _problem(problems, f"{where}.name", f"{name!r} must be a column name of letters, digits and _")
        elif name in seen:
            _problem(problems, f"{where}.name", f"{name!r} appears twice")
        seen.add(name)
    return asset


def _connector(document: dict, section: dict, side: str, path: Path, problems: list[str], import_plugins: bool):
    """``(type, plugin class)`` of the job's ``source`` or ``target``: a plugin (``custom_reader`` /
    ``custom_writer``; imported only with ``import_plugins``, else its file is read), else a built-in type named by
    ``<side>_connector``."""
    from etl_platform.destinations.registry import DESTINATIONS
    from etl_platform.sources import SOURCE_CLASSES  # the names: checking one imports no reader

    plugin_key, base, known, what = (("custom_reader", BaseReader, SOURCE_CLASSES, "reader") if side == "source" else
                                     ("custom_writer", BaseWriter, DESTINATIONS, "destination"))
    where = f"{side}.{plugin_key}"
    if section.get(plugin_key):
        try:
            if not import_plugins:
                check_plugin_source(section[plugin_key], base, path.parent, where)
                return "custom", None
            return "custom", load_plugin(section[plugin_key], base, path.parent, where)
        except Exception as error:
            _problem(problems, where, str(error).split(f"{where}: ", 1)[-1])
            return "custom", None
    kind = document.get(f"{side}_connector")
    if kind not in known:
        _problem(problems, f"{side}_connector", f"{kind!r} is not a built-in {what} ({', '.join(sorted(known))}); "
                                                f"or set {where}")
    return kind, None


def _objects(source: dict, source_type: str, problems: list[str]) -> tuple[str | None, ...]:
    names: list[str] = []
    for key in ("tables", "objects"):
        value = source.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not value:
            _problem(problems, f"source.{key}", "must be a non-empty list")
            continue
        for number, item in enumerate(value):
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not QUALIFIED.fullmatch(name):
                _problem(problems, f"source.{key}[{number}]", f"{name!r} must be a name like users or crm.users "
                                                              "(letters, digits, _)")
            else:
                names.append(name)
    by_name: dict[str, list[str]] = {}
    for name in names:
        by_name.setdefault(object_name(name), []).append(name)
    for name, same in by_name.items():
        if len(same) > 1:
            _problem(problems, "source.tables" if source.get("tables") else "source.objects",
                     f"{' and '.join(repr(s) for s in same)} would all be named {name!r} (their asset key, folder and "
                     "place in the target): list each object once, or read them in jobs of their own")
    if names and source.get("query"):
        _problem(problems, "source.query", "set either query or tables/objects, not both")
    incremental = _mapping(source.get("incremental"), "source.incremental", problems)
    cursor = incremental.get("cursor_field")
    if incremental and (not isinstance(cursor, str) or not IDENTIFIER.fullmatch(cursor)):
        _problem(problems, "source.incremental.cursor_field", f"{cursor!r} must be a column name")
    return tuple(names) or (None,)


def _target_rules(target: dict, asset: dict, source: dict, delivers: str, problems: list[str]) -> None:
    """The target's mode and keys against what a run of the source delivers (``Source.delivers``): each mode a
    source's runs could lose or double rows with is refused, naming why and what to use."""
    mode = write_mode(target, source, delivers)
    if mode not in MODES:
        _problem(problems, "target.mode", f"{mode!r} is not one of {', '.join(MODES)}")
    fields = asset.get("schema") or []
    keys = key_columns(target, fields, delivers)
    if mode == "upsert" and not keys:
        _problem(problems, "target.id_columns", "mode upsert needs the key columns (id_columns, or unique: true "
                                                "fields in the asset schema)")
    named = {f.get("name") for f in fields if isinstance(f, dict)}
    if mode == "upsert" and delivers == "messages" and fields and not target.get("id_columns") \
            and not set(keys) <= named:
        _problem(problems, "asset.schema", f"the messages are upserted by {', '.join(keys)} (their identity: a "
                                           "message delivered again lands once), which the schema does not write: "
                                           f"add {{name: {keys[0]}, type: string}}, or set target.id_columns")
    if source.get("incremental") and mode == "append":
        _problem(problems, "target.mode", "an incremental read re-reads the rows at its mark (>=) and in the "
                                          "lookback window; append would double them: use upsert with id_columns")
    if source.get("incremental") and mode == "overwrite":
        _problem(problems, "target.mode", "an incremental read gives the rows changed since its mark, and overwrite "
                                          "makes the target only those: the rest would be lost; use upsert (the "
                                          "default with incremental), or remove source.incremental to read "
                                          "everything each run")
    if delivers == "changed_files" and mode == "append":
        _problem(problems, "target.mode", "a files source reads a changed file again, whole: append would add its "
                                          "rows twice; use overwrite (the default: the target mirrors the files, "
                                          "all read each run) or upsert with id_columns")
    if delivers == "messages" and mode == "append":
        _problem(problems, "target.mode", "a queue redelivers the messages of a run killed between the target's "
                                          "commit and their acknowledgement: append would write them twice; use "
                                          "upsert (the default: by _message_id, so a message lands once)")
    if delivers == "messages" and mode == "overwrite":
        _problem(problems, "target.mode", "a queue's messages are read once: overwrite would leave only the last "
                                          "run's in the target; use upsert (the default: by _message_id)")
    for key in ("partitioning", "partition_by", "id_columns"):
        value = target.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and IDENTIFIER.fullmatch(v) for v in value):
            _problem(problems, f"target.{key}", f"{value!r} must be a list of column names")
    for key in ("path",):
        value = target.get(key)
        if value is not None and (not isinstance(value, str) or value.startswith("/") or ".." in value.split("/")):
            _problem(problems, f"target.{key}", f"{value!r} must stay inside the target: a relative path without ..")
    connection = target.get("connection") if isinstance(target.get("connection"), dict) else {}
    for key in ("prefix", "base_path"):
        value = connection.get(key)
        if key == "prefix" and isinstance(value, str) and ".." in value.split("/"):
            _problem(problems, f"target.connection.{key}", f"{value!r} must not climb out of the bucket with ..")


def _one_place_per_overwritten_object(target_type: str, target: dict, mode: str, objects: tuple,
                                      problems: list[str]) -> None:
    """Several objects (tables, collections) overwriting one database or search-engine place: each object's
    overwrite would replace the one before, leaving only the last object's rows. Where each object's rows go is the
    destination type's rule (``DestinationType.place_of``)."""
    from etl_platform.destinations.registry import DESTINATIONS

    kind = DESTINATIONS.get(target_type)
    if kind is None or kind.is_file_store or len(objects) < 2 or mode != "overwrite":
        return
    connection = target.get("connection") if isinstance(target.get("connection"), dict) else {}
    places = {kind.place_of(connection, object_name(obj)) for obj in objects if obj is not None}
    if len(places) == len(objects):
        return
    if kind.place is None:
        _problem(problems, "target.mode", f"{len(objects)} objects overwrite the one {target_type} collection of "
                                          "target.connection.url: each would replace the one before, leaving only "
                                          "the last; use upsert, or one job per object")
    elif connection.get(kind.place):
        _problem(problems, f"target.connection.{kind.place}",
                 f"{len(objects)} objects overwrite the one {kind.place} {connection[kind.place]!r}: each would "
                 f"replace the one before, leaving only the last; remove it, so each object writes the {kind.place} "
                 "named after it, or use upsert")


def _plugin_state_rule(source: dict, target: dict, path: Path, problems: list[str]) -> None:
    """A reader plugin that keeps state (``state_manager.set``) with an ``append`` target: the state is saved after
    the target commits, so a run killed between the two appends the same records again. Refused with the reason."""
    reader = source.get("custom_reader")
    if not reader or write_mode(target, source) != "append":
        return
    try:
        keeps_state = plugin_keeps_state(reader, path.parent, "source.custom_reader")
    except ConfigurationError:
        return  # the plugin's own problem is reported where it is checked
    if keeps_state:
        _problem(problems, "target.mode", f"append with a reader that keeps state ({reader} calls "
                                          "state_manager.set): the state is saved after the target commits, so a "
                                          "run killed between the two would append the same records again; use "
                                          "upsert with id_columns, or overwrite")


def _schedule(value: Any, problems: list[str]) -> str | None:
    from dagster._utils.schedules import is_valid_cron_string

    if value is None:
        return None
    cron = value.get("cron") if isinstance(value, dict) else value
    if not isinstance(cron, str) or not is_valid_cron_string(cron):
        _problem(problems, "schedule", f"{cron!r} is not a cron expression like '0 * * * *'")
        return None
    return cron
