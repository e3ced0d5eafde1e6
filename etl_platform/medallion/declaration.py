"""A medallion declared in a ``defs.yaml``: its tables (``models``), its landing contract, its job (docs/dg.md).

    type: etl_platform.components.SqlMedallion
    attributes:
      project_sql_folder: video_analytics        # or sql_folder: sql (relative to the defs.yaml)
      group_name: video_analytics_{layer}        # {layer}: landing, bronze, or the table's schema
      landing: {contract: etl_platform.video_analytics.contract, sensor: video_analytics_landing_sensor}
      checks_module: etl_platform.video_analytics.checks
      models:                                    # in build order
        silver.users:
          scripts: [silver/users.sql]
          key: [user_id]                         # an incremental table (medallion/incremental.py)
          keeps: [silver._users_rows, silver._quarantine_users]
          files_of: users                        # the landing files of this bronze entity: changed_files
          feed: [user_id]                        # what it logs of its changes for the tables below
          quarantine: silver._quarantine_users   # its rows set aside, reported by reason
        gold.user_engagement:
          scripts: [gold/user_engagement.sql]
          key: [user_id]
          reads: {changed_users: silver.users}   # a temporary table of the changes silver.users logged

A model with ``scripts`` and no ``key`` is rebuilt whole by its scripts each run. This module turns the declaration
into what runs (``IncrementalStep``s) and what Dagster shows (asset keys, groups, dependencies and column lineage read
from the SQL); ``medallion/assets.py`` builds the assets. The same file is read by the component and, for the
reference pipeline, by ``etl_platform.video_analytics.steps`` (its checks need the steps): one declaration.
"""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path
from types import ModuleType

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from etl_platform import settings
from etl_platform.errors import ConfigurationError, validation_details
from etl_platform.medallion.incremental import Feed, IncrementalStep
from etl_platform.medallion.lineage import TableSql, read_table_sql_cached

TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModelDeclaration(BaseModel):
    """One table of ``models``: built by its SQL files (run in order, paths below the SQL folder; a file
    ``<name>.<engine>.sql`` beside one replaces it on that engine)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    scripts: list[str] = Field(min_length=1)
    key: list[str] | None = Field(default=None, min_length=1)  # given: built incrementally, changes counted by it
    keeps: list[str] = []  # the other tables its scripts keep (a full refresh drops them with it)
    files_of: str | None = None  # a landing entity whose changed files the scripts read (changed_files)
    reads: dict[str, str] = {}  # temporary table → the upstream model whose logged changes it receives
    feed: list[str] = []  # the columns it logs of its changed rows, for the models that read it
    rebuild_by_day: dict[str, str] = {}  # input → a SELECT of what a backfill of days adds to it ({days})
    quarantine: str | None = None  # a table of the rows it set aside: reported by reason in its metadata

    @model_validator(mode="after")
    def _incremental_settings_need_a_key(self) -> ModelDeclaration:
        given = [name for name in ("files_of", "reads", "feed", "rebuild_by_day") if getattr(self, name)]
        if given and not self.key:
            raise ValueError(f"{', '.join(given)} need `key` (an incremental table); without a key the scripts "
                             "rebuild the table whole each run")
        unknown = sorted(set(self.rebuild_by_day) - set(self.reads) - ({"changed_files"} if self.files_of else set()))
        if unknown:
            raise ValueError(f"rebuild_by_day: {', '.join(unknown)} is not an input of this model (its inputs: "
                             f"{', '.join(sorted(self.reads) + (['changed_files'] if self.files_of else [])) or 'none'})")
        for column in [*(self.key or []), *self.feed]:
            if not COLUMN.match(column):
                raise ValueError(f"{column!r} is not a column name (letters, digits and _)")
        for table in [*self.keeps, *self.reads.values(), *([self.quarantine] if self.quarantine else [])]:
            if not TABLE.match(table):
                raise ValueError(f"{table!r} is not a table name (schema.table: letters, digits and _)")
        return self


class LandingDeclaration(BaseModel):
    """The landing files and their bronze tables: ``contract``, a module with ``DOMAIN`` (the landing folder's
    name), ``BRONZE`` ({entity: landing.BronzeSpec}) and ``column_description(table, column)``."""

    model_config = ConfigDict(extra="forbid")

    contract: str
    sensor: str | None = None  # the name of a sensor that reports the landing files' changes

    def module(self) -> ModuleType:
        try:
            module = importlib.import_module(self.contract)
        except ImportError as error:
            raise ConfigurationError(f"landing.contract {self.contract!r} cannot be imported: {error}") from None
        missing = [name for name in ("DOMAIN", "BRONZE", "column_description") if not hasattr(module, name)]
        if missing:
            raise ConfigurationError(f"landing.contract {self.contract!r} has no {', '.join(missing)}")
        return module


class ScheduleDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    cron: str
    timezone: str = "UTC"
    description: str | None = None


class JobDeclaration(BaseModel):
    """A job of every asset of the medallion (and of ``include_groups``), with an optional schedule."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    include_groups: list[str] = []
    schedule: ScheduleDeclaration | None = None


def validated(cls, value, where: str):
    try:
        return cls.model_validate(value)
    except ValidationError as error:
        raise ConfigurationError(f"{where}: {validation_details(error)}") from None


class Medallion:
    """A declared medallion: its models in build order, where their SQL is, its landing contract and groups."""

    def __init__(self, where: str, models: dict, *, sql_folder: Path, script_prefix: str,
                 landing: dict | None = None, group_name: str = "{layer}", owners: list[str] | None = None,
                 job: dict | None = None, automation_sensor: str | None = None):
        self.where = where  # the defs.yaml, named in errors
        self.job = validated(JobDeclaration, job, f"{where}: job") if job else None
        self.automation_sensor = automation_sensor  # the name of the sensor of its automation conditions
        self.sql_folder = sql_folder  # where the scripts are read at load (lineage, existence)
        self.script_prefix = script_prefix  # what a script's path starts with for the warehouse (run_script)
        self.group_name = group_name
        self.owners = list(owners or [])
        self.landing = validated(LandingDeclaration, landing, f"{where}: landing") if landing else None
        try:
            self.contract = self.landing.module() if self.landing else None
        except ConfigurationError as error:
            raise ConfigurationError(f"{where}: {error}") from None
        if not isinstance(models, dict) or not models:
            raise ConfigurationError(f"{where}: models: expected a mapping of table (schema.table) → its declaration")
        self.models: dict[str, ModelDeclaration] = {}
        for table, value in models.items():
            if not isinstance(table, str) or not TABLE.match(table):
                raise ConfigurationError(f"{where}: models: {table!r} is not a table name (schema.table)")
            self.models[table] = validated(ModelDeclaration, value, f"{where}: models: {table}")
            self._check_model(table, self.models[table])

    def _check_model(self, table: str, model: ModelDeclaration) -> None:
        where = f"{self.where}: models: {table}"
        for script in model.scripts:
            if not (self.sql_folder / script).is_file():
                raise ConfigurationError(f"{where}: script {script}: no such file in {self.sql_folder}")
        entities = tuple(self.contract.BRONZE) if self.contract else ()
        if model.files_of and model.files_of not in entities:
            raise ConfigurationError(f"{where}: files_of {model.files_of!r} is not a landing entity "
                                     f"({', '.join(entities) or 'no landing contract is declared'})")
        for name, upstream in model.reads.items():
            producer = self.models.get(upstream) if upstream != table else None
            if producer is None or not producer.feed:
                earlier = [t for t, m in self.models.items() if m.feed and t != table]
                raise ConfigurationError(f"{where}: reads {name}: {upstream!r} is not a model declared above with a "
                                         f"feed ({', '.join(earlier) or 'none'})")
            if not COLUMN.match(name):
                raise ConfigurationError(f"{where}: reads: {name!r} is not a table name (letters, digits and _)")

    @classmethod
    def from_attributes(cls, attributes: dict, base: Path, where: str) -> Medallion:
        """The medallion of a SqlMedallion component's attributes (``base``: its defs.yaml's folder)."""
        if attributes.get("project_sql_folder"):
            folder_name = attributes["project_sql_folder"].strip("/")
            sql_folder, prefix = settings.sql_root() / folder_name, f"{folder_name}/"
        else:
            sql_folder = (base / attributes.get("sql_folder", "sql")).resolve()
            prefix = f"{sql_folder}/"
        if not sql_folder.is_dir():
            raise ConfigurationError(f"{where}: the SQL folder {sql_folder} is not a folder")
        return cls(where, attributes.get("models"), sql_folder=sql_folder, script_prefix=prefix,
                   landing=attributes.get("landing"), group_name=attributes.get("group_name") or base.name,
                   owners=attributes.get("owners"), job=attributes.get("job"),
                   automation_sensor=attributes.get("automation_sensor"))

    @classmethod
    def from_defs_yaml(cls, path: Path) -> Medallion:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls.from_attributes(document.get("attributes") or {}, path.parent, str(path))

    # ------------------------------------------------------------ names

    @staticmethod
    def key(table: str) -> dg.AssetKey:
        return dg.AssetKey(table.split("."))

    def group(self, layer: str) -> str:
        return self.group_name.replace("{layer}", layer)

    def layers(self) -> list[str]:
        """The groups' layers, top down: landing and bronze (with a landing contract), then the models' schemas."""
        found = ["landing", "bronze"] if self.contract else []
        for table in self.models:
            if (schema := table.split(".")[0]) not in found:
                found.append(schema)
        return found

    # ------------------------------------------------------------ what runs

    @functools.cached_property
    def steps(self) -> dict[str, IncrementalStep]:
        """Each incremental model's step (medallion/incremental.py), by table."""
        schemas = tuple(dict.fromkeys(table.split(".")[0] for table in self.models))
        return {
            table: IncrementalStep(
                table, tuple(self.script_prefix + script for script in model.scripts), tuple(model.key),
                owns=(table, *model.keeps), files_of=model.files_of,
                inputs={name: self.feed(upstream) for name, upstream in model.reads.items()},
                feed_columns=tuple(model.feed), by_day=dict(model.rebuild_by_day), state_schemas=schemas)
            for table, model in self.models.items() if model.key
        }

    def feed(self, table: str) -> Feed:
        """What the models reading ``table`` get of its changes: its declared feed columns (and its key, which
        tells whether those rows are distinct already)."""
        producer = self.models[table]
        return Feed(table, tuple(producer.feed), tuple(producer.key or ()))

    def scripts(self, table: str) -> tuple[str, ...]:
        """The warehouse paths of a model's scripts (``run_script``)."""
        return tuple(self.script_prefix + script for script in self.models[table].scripts)

    # ------------------------------------------------------------ what its SQL says

    @functools.cached_property
    def table_sql(self) -> dict[str, TableSql]:
        """What each model's SQL says (medallion/lineage.py): the tables it reads and each column's upstream
        columns. Read in build order, each table's columns feeding the next; a model rebuilt whole is read on its
        own. Cached (settings.cache_folder())."""
        cache = settings.cache_folder() / "sql"
        columns: dict[str, tuple[str, ...]] = (
            {spec.table: tuple(spec.columns) for spec in self.contract.BRONZE.values()} if self.contract else {})
        read = {}
        for table, model in self.models.items():
            texts = [(self.sql_folder / script).read_text(encoding="utf-8") for script in model.scripts]
            if table in self.steps:
                step = self.steps[table]
                inputs = {"changed_files": ("source_file",)} if step.files_of else {}
                inputs.update({name: feed.columns for name, feed in step.inputs.items()})
                read[table] = read_table_sql_cached(cache, table, texts, step.owns, columns, inputs)
                columns[table] = read[table].columns
            else:
                read[table] = read_table_sql_cached(cache, table, texts)
        return read

    @functools.cached_property
    def owner_keys(self) -> dict[str, dg.AssetKey]:
        """Each warehouse table the medallion writes → its asset (a model's other tables are its asset's)."""
        owners = {spec.table: self.key(spec.table) for spec in self.contract.BRONZE.values()} if self.contract else {}
        for table, model in self.models.items():
            owners.update({kept: self.key(table) for kept in (table, *model.keeps)})
        return owners

    def deps(self, table: str) -> list[dg.AssetKey]:
        """The assets whose tables the model's SQL reads: the medallion's own, or the asset named like a table of
        another schema (``gold.viewing_fact`` → ``gold/viewing_fact``, as a SELECT model's). A table of one of the
        medallion's own schemas that none of its assets writes is an error naming it (a misspelt name)."""
        owners = self.owner_keys
        own_schemas = {name.split(".")[0] for name in owners}
        reads = self.table_sql[table].reads
        unknown = sorted(name for name in reads if name not in owners and name.split(".")[0] in own_schemas)
        if unknown:
            raise ConfigurationError(f"{self.where}: the SQL of {table} reads {', '.join(unknown)}, which no asset of "
                                     "this medallion writes")
        return sorted({owners.get(name, self.key(name)) for name in reads}, key=lambda key: key.to_user_string())

    def column_lineage(self, table: str) -> dg.TableColumnLineage:
        """``dagster/column_lineage`` of a model's table: each column's upstream (asset, column) pairs."""
        owners = self.owner_keys
        return dg.TableColumnLineage(deps_by_column={
            column: [dg.TableColumnDep(asset_key=owners.get(origin_table, self.key(origin_table)), column_name=origin)
                     for origin_table, origin in origins]
            for column, origins in self.table_sql[table].lineage.items() if origins
        })
