"""Solr: how to reach a core or collection, declared once for the reader (``reader.py``), the writer target
and the IO manager (``writer.py``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import dagster as dg
from pydantic import Field


class SolrConnection(dg.Config):
    """Where a Solr core or collection is and how to reach it: the fields the target, the IO manager and the
    reader (``SolrSource``) share, declared once."""

    # may carry user:password: kept out of repr; describe() gives it without them
    url: str = Field(description="The core or collection, e.g. http://localhost:8983/solr/mycore", repr=False)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)  # a secret
    unique_key: str = Field(default="id", description="The schema's uniqueKey field.")

    def describe(self) -> str:
        """The url without any user:password part."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(netloc=parts.netloc.split("@")[-1]))

