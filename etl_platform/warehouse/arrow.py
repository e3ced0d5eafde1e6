"""DuckDB results as Arrow, across DuckDB releases (the method's name changed in 2.0)."""

import pyarrow as pa


def arrow_table(relation) -> pa.Table:
    """A DuckDB relation (``conn.sql(...)``) as a pyarrow.Table."""
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        method = getattr(relation, name, None)
        if method is not None:
            result = method()
            return result.read_all() if isinstance(result, pa.RecordBatchReader) else result
    raise RuntimeError("this DuckDB release returns no Arrow tables")


def arrow_reader(relation, batch_rows: int = 100_000) -> pa.RecordBatchReader:
    """A DuckDB relation as a stream of record batches of up to ``batch_rows`` rows: the result is produced as it
    is read, so memory holds a batch, not the result."""
    for name in ("to_arrow_reader", "fetch_record_batch"):
        method = getattr(relation, name, None)
        if method is not None:
            return method(batch_rows)
    raise RuntimeError("this DuckDB release returns no Arrow readers")
