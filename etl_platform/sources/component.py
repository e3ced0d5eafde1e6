"""Source assets declared in a ``defs.yaml``: one connection, its streams, each landed in ``bronze.<stream>``.

    # etl_platform/defs/crm/defs.yaml
    type: etl_platform.components.SourceStreams
    attributes:
      connection:
        type: postgres                      # a source type of etl_platform.sources.SOURCE_CLASSES
        config: {host: db.internal, database: crm, username: etl, password: "${CRM_PG_PASSWORD}"}
      streams:
        - name: orders                      # → the asset bronze/orders, the table bronze.orders
          config: {table: public.orders, cursor_column: updated_at, primary_key: [id]}
        - name: customers
          config: {table: public.customers, primary_key: [id]}
      sensor: true                          # a sensor per stream: a run when it has new data (files, queues)

Each stream is the source resource of ``type`` with the connection's settings and the stream's own (a stream's
setting wins); ``source_asset`` lands it exactly once (docs/sources.md). A value ``${VAR}`` becomes
``dg.EnvVar("VAR")``: read from the environment when a run starts, never written into the definitions; a
``${VAR}`` inside a longer value is refused (it would have to be resolved at load). A wrong type name, a setting the
source does not have or a bad value fails the load, naming the stream and the setting.
"""

import re
from typing import Any, get_args

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

from etl_platform.errors import ConfigurationError, invalid_configuration

WHOLE_VARIABLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
ANY_VARIABLE = re.compile(r"\$\{[^}]*\}")


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="The source type: postgres, mysql, sqlite, mssql, files, rest, rabbitmq, sqs, "
                                  "kafka, mongodb, opensearch, solr, cassandra.")
    config: dict[str, Any] = Field(default_factory=dict, description="The settings every stream shares.")


class Stream(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The stream's name: the asset bronze/<name> and the table bronze.<name>.")
    config: dict[str, Any] = Field(default_factory=dict, description="The stream's own settings: the object "
                                   "(table, query, path, topic, index), cursor, key, ...")
    description: str | None = None


def _field_is_int(source_class, name: str) -> bool:
    field = source_class.model_fields.get(name)
    if field is None:
        return False
    annotation = field.annotation
    return annotation is int or int in get_args(annotation)


def _with_env_vars(source_class, settings: dict[str, Any], where: str) -> dict[str, Any]:
    """``${VAR}`` values as ``dg.EnvVar`` (resolved when a run starts)."""
    resolved = {}
    for key, value in settings.items():
        if isinstance(value, str) and (match := WHOLE_VARIABLE.match(value)):
            resolved[key] = dg.EnvVar.int(match.group(1)) if _field_is_int(source_class, key) else dg.EnvVar(match.group(1))
        elif isinstance(value, str) and ANY_VARIABLE.search(value):
            raise ConfigurationError(f"{where}: {key}: a variable must be the whole value (\"${{NAME}}\"), so that "
                                     "it is read when a run starts; put the whole value in the variable")
        else:
            resolved[key] = value
    return resolved


def build_stream_resource(connection: Connection, stream: Stream, where: str):
    """The source resource of one stream (connection settings, then the stream's)."""
    from etl_platform.sources import SOURCE_CLASSES
    import etl_platform.sources as sources

    if connection.type not in SOURCE_CLASSES:
        raise ConfigurationError(f"{where}: connection type {connection.type!r} is not one of "
                                 f"{', '.join(sorted(SOURCE_CLASSES))}")
    source_class = getattr(sources, SOURCE_CLASSES[connection.type])
    settings = {**connection.config, **stream.config}
    unknown = sorted(set(settings) - set(source_class.model_fields))
    if unknown:
        raise ConfigurationError(f"{where}: {source_class.__name__} has no setting(s) {', '.join(unknown)}")
    try:
        return source_class(**_with_env_vars(source_class, settings, where))
    except Exception as error:  # pydantic's ValidationError, or the source's own check
        if hasattr(error, "errors"):
            raise invalid_configuration(where, error) from None
        raise ConfigurationError(f"{where}: {error}") from None


class SourceStreamsScaffolder(dg.Scaffolder):
    """``dg scaffold defs etl_platform.components.SourceStreams <folder>``: a defs.yaml to fill in (a PostgreSQL
    connection whose password is read from the environment at run time, one stream)."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {
            "connection": {"type": "postgres", "config": {"host": "127.0.0.1", "port": 5432, "database": "crm",
                                                          "username": "etl", "password": "${CRM_PG_PASSWORD}"}},
            "streams": [{"name": "crm_orders", "config": {"table": "public.orders", "cursor_column": "updated_at",
                                                          "primary_key": ["id"]}}],
        })


@dg.scaffold_with(SourceStreamsScaffolder)
class SourceStreams(dg.Component, dg.Model, dg.Resolvable):
    """One connection and its streams as source assets (``bronze/<stream>``), with a sensor each if asked."""

    connection: Connection
    streams: list[Stream]
    sensor: bool = False
    group_name: str = "sources"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from etl_platform.sources.assets import source_asset, source_sensor

        names = [stream.name for stream in self.streams]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"{context.path}/defs.yaml: stream names repeat: {names}")
        assets, sensors, resources = [], [], {}
        for stream in self.streams:
            where = f"{context.path}/defs.yaml, stream {stream.name}"
            key = f"{stream.name}_source"
            resources[key] = build_stream_resource(self.connection, stream, where)
            assets.append(source_asset(stream.name, source_key=key, kinds={self.connection.type},
                                       group_name=self.group_name, description=stream.description))
            if self.sensor:
                sensors.append(source_sensor(stream.name, source_key=key))
        return dg.Definitions(assets=assets, sensors=sensors, resources=resources)
