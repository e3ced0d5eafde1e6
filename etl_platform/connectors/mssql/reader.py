"""SQL Server: tables and queries read through pymssql, ``batch_size`` rows at a time.

pymssql describes columns only coarsely, so Arrow types come from the values of the first batch
(``int`` → int64, ``Decimal`` → decimal128(38, s), ``datetime`` → timestamp, ``bytes`` → binary, ...); a later
value that does not fit sends its row to the quarantine. Identifiers are quoted ``[like this]``; parameters use
``%s`` / ``%(name)s``. No SQL Server runs on our test machines: the suite checks the exact SQL and parameters at
the driver boundary, and runs against a real server when ``ETL_TEST_MSSQL_URL`` is set.
"""

from __future__ import annotations

from pydantic import Field

from etl_platform.errors import ClientConnectionError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import first_line, without_secrets
from etl_platform.sources.relational import DbApiSource

# pymssql raises OperationalError for SQL errors too; these words mark a lost or failed connection.
CONNECTION_LOST = ("DBPROCESS is dead", "Adaptive Server connection", "Read from the server failed",
                   "Write to the server failed", "Unable to connect", "connection timed out")


class SqlServerSource(DbApiSource):
    """A SQL Server table or query."""

    kind = "mssql"
    identifier_quote = ("[", "]")

    host: str = "127.0.0.1"
    port: int = 1433
    database: str
    username: str
    password: str | None = Field(default=None, repr=False)  # a secret: kept out of repr, logs and messages

    def describe(self) -> str:
        return f"mssql://{self.username}@{self.host}:{self.port}/{self.database} ({self.target_text()})"

    def connect(self):
        pymssql = require("pymssql", "SqlServerSource")

        try:
            return pymssql.connect(server=self.host, port=str(self.port), user=self.username,
                                   password=self.password or "", database=self.database,
                                   login_timeout=int(self.timeout_seconds), timeout=0, as_dict=False)
        except pymssql.Error as error:
            raise ClientConnectionError(f"mssql: cannot connect to {self.host}:{self.port} as {self.username} "
                                        f"(database {self.database}): "
                                        f"{without_secrets(first_line(error), self.password)}") from error

    def translate_error(self, error: Exception) -> Exception | None:
        pymssql = require("pymssql", "SqlServerSource")

        if isinstance(error, pymssql.OperationalError) and any(sign in str(error) for sign in CONNECTION_LOST):
            return ClientConnectionError(f"mssql: the connection to {self.host}:{self.port} failed while reading the "
                                         f"{self.target_text()}: {without_secrets(first_line(error), self.password)}")
        if isinstance(error, pymssql.Error):
            return QueryError(f"mssql: reading the {self.target_text()} of {self.database} failed: "
                              f"{without_secrets(first_line(error), self.password)}")
        return None
