"""The staging step shared by the file loaders.

A loader first reads a whole file into the temporary table ``_bronze_stage`` (DuckDB spills it to
disk when it is large); only then does the ingestion engine's commit (``sources/ingest.py``, disposition
``replace_by_file``) delete the file's old bronze rows and insert the staged ones, in one transaction.
A file that cannot be read therefore never half-replaces its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from etl_platform.warehouse.base import sql_string

STAGE = "_bronze_stage"
SOURCE_FILE, INGESTED_AT = "{source_file}", "{ingested_at}"  # where a select names the file and the time


@dataclass(frozen=True)
class Staged:
    """A file read into the staging table.

    ``select`` selects the bronze columns from the stage, with ``{source_file}`` and ``{ingested_at}`` where the
    file's name and the ingestion time go (:meth:`rows_sql`).
    """

    rows: int
    loader: str
    header: list[str]
    select: str

    def rows_sql(self, source_file: str, ingested_at: datetime) -> str:
        """The bronze rows of the staged file: ``select`` with the file's name and the time as SQL literals."""
        return (self.select.replace(SOURCE_FILE, sql_string(source_file))
                .replace(INGESTED_AT, f"CAST({sql_string(ingested_at.isoformat())} AS TIMESTAMPTZ)"))
