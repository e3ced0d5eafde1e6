"""Materialization metadata for a warehouse table: row count, column schema and a preview."""

from __future__ import annotations

from typing import Any

import dagster as dg

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60


def table_metadata(conn, table: str, describe=None, **extra: Any) -> dict[str, Any]:
    """``dagster/row_count``, ``dagster/column_schema`` (each column described by ``describe(table, column)``
    when given), ``dagster/table_name`` and a markdown preview, on any warehouse session."""
    columns = conn.columns(table)
    row_count = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    cursor = conn.execute(f"SELECT * FROM {table} LIMIT {PREVIEW_ROWS}")
    preview_rows = cursor.fetchall()
    preview_names = [d[0] for d in cursor.description]
    return {
        "dagster/table_name": table,
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=name, type=data_type,
                                    description=describe(table, name) if describe else None)
                     for name, data_type in columns]
        ),
        "preview": dg.MetadataValue.md(markdown_table(preview_names, preview_rows)),
        **extra,
    }


def markdown_table(names: list[str], rows: list[tuple]) -> str:
    """A small markdown table; cells are shortened and pipes and newlines escaped."""
    if not names:
        return "_(no columns)_"
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines if rows else [*lines, "| _(no rows)_ |"])


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    text = str(value).replace("|", "\\|").replace("\r", " ").replace("\n", "⏎")
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"
