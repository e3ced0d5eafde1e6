"""SQLite: a database file read with the standard library, ``batch_size`` rows at a time.

SQLite's columns have no fixed type: a column's Arrow type comes from the table's declared type when a
table is read (INTEGER → int64, REAL/FLOAT/DOUBLE → float64, TEXT/CHAR/CLOB → string, BLOB → binary,
BOOLEAN → bool), and from the values of the first batch otherwise. A value that does not fit its column's type
(text stored in an INTEGER column, say) sends its row to the quarantine with the reason.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
from pydantic import Field

from etl_platform.errors import ClientConnectionError, QueryError
from etl_platform.sources.base import first_line
from etl_platform.sources.relational import DbApiSource

DECLARED_TYPES = (("INT", pa.int64()), ("BOOL", pa.bool_()), ("CHAR", pa.string()), ("CLOB", pa.string()),
                  ("TEXT", pa.string()), ("BLOB", pa.binary()), ("REAL", pa.float64()), ("FLOA", pa.float64()),
                  ("DOUB", pa.float64()))


class SQLiteSource(DbApiSource):
    """A table or query of a SQLite database file."""

    kind = "sqlite"
    named_placeholder = ":{}"
    positional_placeholder = "?"

    path: str = Field(description="The database file.")

    def describe(self) -> str:
        return f"sqlite://{self.path} ({self.target_text()})"

    def connect(self):
        if not Path(self.path).is_file():
            raise ClientConnectionError(f"sqlite: database file {self.path} does not exist")
        try:
            return sqlite3.connect(f"file:{Path(self.path).resolve()}?mode=ro", uri=True, timeout=self.timeout_seconds)
        except sqlite3.Error as error:
            raise ClientConnectionError(f"sqlite: cannot open {self.path}: {first_line(error)}") from error

    def arrow_types(self, cursor) -> list[pa.DataType | None]:
        names = [d[0] for d in cursor.description]
        if not self.table:
            return [None] * len(names)
        schema, _, table = self.table.rpartition(".")  # a schema goes before the pragma: PRAGMA "main".table_info("t")
        pragma = f"PRAGMA {self.quote(schema) + '.' if schema else ''}table_info({self.quote(table)})"
        declared = {row[1]: (row[2] or "").upper() for row in cursor.connection.execute(pragma).fetchall()}
        return [_declared_type(declared.get(name, "")) for name in names]

    def translate_error(self, error: Exception) -> Exception | None:
        if isinstance(error, sqlite3.OperationalError) and "no such" in str(error):
            return QueryError(f"sqlite: {self.path}: {first_line(error)}")
        if isinstance(error, sqlite3.Error):
            return QueryError(f"sqlite: reading the {self.target_text()} of {self.path} failed: {first_line(error)}")
        return None


def _declared_type(declared: str) -> pa.DataType | None:
    for fragment, arrow_type in DECLARED_TYPES:
        if fragment in declared:
            return arrow_type
    return None  # NUMERIC affinity (NUMERIC, DECIMAL, DATETIME, ...): the values decide
