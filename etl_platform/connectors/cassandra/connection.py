"""Cassandra (and ScyllaDB): how to reach a cluster, declared once for the reader (``reader.py``), the
writer target and the IO manager (``writer.py``)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from etl_platform.destinations.errors import CredentialsRefusedError, DestinationConnectionError
from etl_platform.extras import require


def cassandra_session(settings):
    """A driver session on ``settings.keyspace`` from anything with ``hosts``, ``port``, ``keyspace``,
    ``username``, ``password`` and ``timeout_seconds`` (writer and reader); the caller shuts it down with
    ``session.cluster.shutdown()``."""
    require("cassandra", "The Cassandra reader and writer")
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable

    auth = PlainTextAuthProvider(settings.username, settings.password or "") if settings.username else None
    cluster = Cluster(contact_points=settings.hosts, port=settings.port, auth_provider=auth,
                      connect_timeout=settings.timeout_seconds, control_connection_timeout=settings.timeout_seconds)
    try:
        return cluster.connect(settings.keyspace)
    except NoHostAvailable as error:
        cluster.shutdown()
        reasons = "; ".join(f"{host}: {type(e).__name__}" for host, e in list(error.errors.items())[:3])
        refused = error.errors and all(type(e).__name__ == "AuthenticationFailed" for e in error.errors.values())
        kind = CredentialsRefusedError if refused else DestinationConnectionError  # a refused login: not retried
        raise kind(f"cassandra: no host of {', '.join(settings.hosts)}:{settings.port} accepted a connection "
                   f"({reasons})") from error


class CassandraConnection(dg.Config):
    """Where a Cassandra table is and how to reach it: the fields the target, the IO manager and the reader
    (``CassandraSource``) share, declared once."""

    hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    port: int = 9042
    keyspace: str
    table: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)  # a secret
    consistency: str = Field(default="LOCAL_QUORUM", description="ONE, LOCAL_QUORUM, QUORUM, ALL, ...")
    timeout_seconds: float = Field(default=30.0, gt=0)

    def describe(self, table: str | None = None) -> str:
        return f"cassandra://{self.hosts[0]}:{self.port}/{self.keyspace}.{table or self.table or '(query)'}"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

