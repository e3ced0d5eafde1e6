"""MySQL and MariaDB: tables and queries read through an unbuffered (server-side) PyMySQL cursor.

Rows stream from the server ``batch_size`` at a time, so memory does not grow with the table. Each column's
Arrow type comes from the server's column type (docs/sources.md has the table): DECIMAL(p,s) →
decimal128(p,s), TIMESTAMP → timestamp[us, UTC] (the session runs in UTC), DATETIME → timestamp[us] (no zone),
JSON → Arrow JSON, binary strings and BLOBs → binary, BIT → binary, TIME → duration. Parameters use
``%s`` / ``%(name)s``.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from etl_platform.errors import ClientConnectionError, CredentialsRefusedError, QueryError
from etl_platform.extras import require
from etl_platform.sources.base import first_line, without_secrets
from etl_platform.sources.relational import DbApiSource

BINARY_CHARSET = 63


ACCESS_DENIED = 1045  # MySQL/MariaDB: Access denied for user


class MySQLSource(DbApiSource):
    """A MySQL / MariaDB table or query."""

    kind = "mysql"
    identifier_quote = ("`", "`")

    host: str = "127.0.0.1"
    port: int = 3306
    database: str
    username: str = "root"
    password: str | None = Field(default=None, repr=False)  # a secret: kept out of repr, logs and messages
    charset: str = "utf8mb4"

    def describe(self) -> str:
        return f"mysql://{self.username}@{self.host}:{self.port}/{self.database} ({self.target_text()})"

    def connect(self):
        pymysql = require("pymysql", "MySQLSource")

        try:
            connection = pymysql.connect(
                host=self.host, port=self.port, user=self.username, password=self.password or "",
                database=self.database, charset=self.charset, connect_timeout=self.timeout_seconds,
                read_timeout=max(self.timeout_seconds, 300), cursorclass=pymysql.cursors.SSCursor,
                init_command="SET time_zone = '+00:00'",
            )
        except pymysql.MySQLError as error:
            refused = bool(error.args) and error.args[0] == ACCESS_DENIED  # the server answered: a retry cannot help
            raise (CredentialsRefusedError if refused else ClientConnectionError)(
                f"mysql: cannot connect to {self.host}:{self.port} as {self.username} (database {self.database}): "
                f"{without_secrets(first_line(error), self.password)}") from error
        return connection

    def close_cursor(self, cursor) -> None:
        """An unbuffered cursor reads the rest of its result on close; on a dead connection that fails, and
        PyMySQL would try again (and fail noisily) when the cursor is collected: detach it instead."""
        try:
            cursor.close()
        except Exception:
            result = getattr(cursor, "_result", None)
            if result is not None:
                result.unbuffered_active = False  # its __del__ would try to read the rest again
            cursor.connection = None

    def arrow_types(self, cursor) -> list[pa.DataType | None]:
        return [_arrow_type(field) for field in cursor._result.fields]

    def translate_error(self, error: Exception) -> Exception | None:
        pymysql = require("pymysql", "MySQLSource")

        if isinstance(error, pymysql.OperationalError) and error.args and error.args[0] in (2006, 2013, 2014, 2055):
            return ClientConnectionError(f"mysql: the connection to {self.host}:{self.port} was lost while reading "
                                         f"the {self.target_text()}: {first_line(error)}")
        if isinstance(error, pymysql.MySQLError):
            return QueryError(f"mysql: reading the {self.target_text()} of {self.database} failed: "
                              f"{without_secrets(first_line(error), self.password)}")
        return None


def _arrow_type(field) -> pa.DataType | None:
    require("pymysql", "MySQLSource")
    from pymysql.constants import FIELD_TYPE as T

    code, binary = field.type_code, field.charsetnr == BINARY_CHARSET
    if code in (T.DECIMAL, T.NEWDECIMAL):
        precision = field.length - (1 if field.scale else 0) - (0 if field.flags & 32 else 1)  # sign, point
        return pa.decimal128(min(max(precision, field.scale, 1), 38), field.scale)
    unsigned = bool(field.flags & 32)
    integer = {T.TINY: 8, T.SHORT: 16, T.INT24: 32, T.LONG: 32, T.LONGLONG: 64, T.YEAR: 16}.get(code)
    if integer:
        if unsigned and code != T.YEAR:
            return {8: pa.uint8(), 16: pa.uint16(), 32: pa.uint32(), 64: pa.uint64()}[integer]
        return {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[integer]
    simple = {T.FLOAT: pa.float32(), T.DOUBLE: pa.float64(), T.DATE: pa.date32(), T.NEWDATE: pa.date32(),
              T.TIMESTAMP: pa.timestamp("us", tz="UTC"), T.DATETIME: pa.timestamp("us"), T.TIME: pa.duration("us"),
              T.JSON: pa.json_(), T.BIT: pa.binary(), T.NULL: None}
    if code in simple:
        return simple[code]
    if code in (T.VARCHAR, T.VAR_STRING, T.STRING, T.TINY_BLOB, T.MEDIUM_BLOB, T.LONG_BLOB, T.BLOB):
        return pa.binary() if binary else pa.string()
    if code in (T.ENUM, T.SET):
        return pa.string()
    return None
