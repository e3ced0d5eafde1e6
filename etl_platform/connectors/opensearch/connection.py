"""OpenSearch: how to reach a cluster, declared once for the reader (``reader.py``), the writer target
and the IO manager (``writer.py``)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from etl_platform.extras import require


def opensearch_client(settings, retries: int = 2):
    """An opensearch-py client from anything with ``hosts``, ``username``, ``password``, ``use_ssl``,
    ``verify_certs`` and ``timeout_seconds`` (the writer, the IO manager, the reader): one place for how we connect."""
    require("opensearchpy", "The OpenSearch reader and writer")
    from opensearchpy import OpenSearch

    auth = (settings.username, settings.password or "") if settings.username else None
    return OpenSearch(hosts=settings.hosts, http_auth=auth, use_ssl=settings.use_ssl,
                      verify_certs=settings.verify_certs, ssl_show_warn=False, timeout=settings.timeout_seconds,
                      max_retries=retries, retry_on_timeout=retries > 0)


def describe_opensearch(settings, index: str | None) -> str:
    """``http(s)://host:port/index``, never the credentials."""
    return f"{'https' if settings.use_ssl else 'http'}://{settings.hosts[0].split('@')[-1]}/{index}"


class OpenSearchConnection(dg.Config):
    """Where an OpenSearch index is and how to reach it: the fields the target, the IO manager and the reader
    (``OpenSearchSource``) share, declared once."""

    hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1:9200"])
    username: str | None = None
    password: str | None = Field(default=None, repr=False)  # a secret
    use_ssl: bool = False
    verify_certs: bool = True
    index: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)

