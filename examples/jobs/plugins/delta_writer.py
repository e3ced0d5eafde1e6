"""A Delta Lake writer plugin (deltalake, no Spark): the whole run becomes one Delta commit.

Seed 003's example appends each batch as its own commit, so a run that fails half-way leaves half its data in the
table. Here each batch is spilled to a local Arrow file, and ``commit_files`` writes them all in one
``write_deltalake`` call: the table gets a new version with the whole run, or nothing.

target:
  custom_writer: plugins/delta_writer.py:DeltaLakeWriter
  mode: append                      # or overwrite
  connection:
    output_base: s3://lake/delta/events      # or a local folder
    storage_options: {AWS_ENDPOINT_URL: ..., AWS_ACCESS_KEY_ID: "${AWS_ACCESS_KEY_ID}", ...}
"""

import os
import tempfile
from typing import Any, Dict, List

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from etl_platform.plugins import BaseWriter

ARROW_TYPES = {"integer": pa.int64(), "number": pa.float64(), "string": pa.string(), "boolean": pa.bool_(),
               "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC")}


class DeltaLakeWriter(BaseWriter):
    """Write the run's records to a Delta table at output_base, in one commit."""

    def __init__(self, asset_definition, target_config, output_base):
        super().__init__(asset_definition, target_config, output_base)
        self.storage_options = dict(target_config.connection.get("storage_options") or {})
        fields = asset_definition.schema or []
        self.schema = pa.schema([(f["name"], ARROW_TYPES.get(f.get("type", "string"), pa.string())) for f in fields]) \
            if fields else None
        self.spill = tempfile.mkdtemp(prefix="delta_writer_")
        self.files: List[str] = []

    def write_batch(self, records: List[Dict[str, Any]], file_counter: int) -> List[Dict[str, Any]]:
        if not records:
            return []
        table = pa.Table.from_pylist(records, schema=self.schema)
        if self.schema is None:
            self.schema = table.schema
        path = os.path.join(self.spill, f"batch-{file_counter:05d}.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        self.files.append(path)
        return [{"path": path, "size_bytes": os.path.getsize(path), "record_count": table.num_rows}]

    def _batches(self):
        for path in self.files:
            with pa.OSFile(path, "rb") as source:
                yield from pa.ipc.open_stream(source)

    def commit_files(self, file_metadata: List[Dict[str, Any]]) -> Dict[str, Any]:
        mode = self.target_config.get("mode") or "append"
        try:
            data = pa.RecordBatchReader.from_batches(self.schema, self._batches())
            write_deltalake(self.output_base, data, mode="overwrite" if mode == "overwrite" else "append",
                            storage_options=self.storage_options or None)
        finally:
            for path in self.files:
                os.unlink(path)
            os.rmdir(self.spill)
        table = DeltaTable(self.output_base, storage_options=self.storage_options or None)
        return {"status": "success", "files_added": len(file_metadata), "delta_version": table.version(),
                "total_records": sum(m["record_count"] for m in file_metadata)}
