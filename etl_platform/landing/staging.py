"""The staging step shared by the file loaders.

A loader first reads a whole file into the temporary table ``_bronze_stage`` (DuckDB spills it to
disk when it is large); only then, inside one transaction, are the file's old bronze rows deleted
and the staged ones inserted. A file that cannot be read therefore never half-replaces its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGE = "_bronze_stage"


@dataclass(frozen=True)
class Staged:
    """A file read into the staging table.

    ``insert_sql`` selects the bronze columns from the stage; its two parameters are the source
    file name and the ingestion time.
    """

    rows: int
    loader: str
    header: list[str]
    insert_sql: str
