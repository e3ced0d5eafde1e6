"""MongoDB: how to reach a deployment, declared once for the reader (``reader.py``), the writer target and
the IO manager (``writer.py``)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from etl_platform.extras import require


def mongo_client(settings):
    """A pymongo client from anything with ``uri`` or ``host``/``port``/``username``/``password``/``auth_source``
    and ``timeout_seconds`` (the writer, the reader, the IO manager): one place for how we connect."""
    pymongo = require("pymongo", "The MongoDB reader and writer")

    options = dict(serverSelectionTimeoutMS=int(settings.timeout_seconds * 1000),
                   connectTimeoutMS=int(settings.timeout_seconds * 1000), tz_aware=True)
    if settings.uri:
        return pymongo.MongoClient(settings.uri, **options)
    credentials = {"username": settings.username, "password": settings.password} if settings.username else {}
    if settings.auth_source:
        credentials["authSource"] = settings.auth_source
    return pymongo.MongoClient(settings.host, settings.port, **credentials, **options)


def describe_mongo(settings, collection: str | None) -> str:
    """``mongodb://host:port/database.collection``, never the credentials."""
    # The authority of mongodb[+srv]://[user:password@]host[:port][,host...]/...: ':/?#[]@' in credentials must be
    # percent-encoded, so the first '/' after the scheme ends it and the last '@' in it ends the credentials.
    where = settings.uri.partition("://")[2].split("/", 1)[0].rpartition("@")[2] if settings.uri else \
        f"{settings.host}:{settings.port}"
    return f"mongodb://{where}/{settings.database}.{collection}"


class MongoConnection(dg.Config):
    """Where a MongoDB collection is and how to reach it: the fields the target, the IO manager and the reader
    (``MongoSource``) share, declared once."""

    uri: str | None = Field(default=None, repr=False)  # may hold a password: kept out of repr and messages
    host: str = "127.0.0.1"
    port: int = 27017
    username: str | None = None
    password: str | None = Field(default=None, repr=False)  # a secret
    auth_source: str | None = None
    database: str
    collection: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)

