"""An Avro writer plugin (fastavro): each batch an Avro file with the asset's schema, published by commit_files.

Files are written locally first; ``commit_files`` copies them to ``output_base`` (a folder, or s3://, gs://,
abfs:// through fsspec) under this run's id and then writes ``_manifest-<run>.json`` naming them: a reader that
follows manifests never sees a half-written run.
"""

import json
import os
import tempfile
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List

import fsspec
from fastavro import parse_schema, writer

from etl_platform.plugins import BaseWriter

AVRO_TYPES = {"integer": "long", "number": "double", "string": "string", "boolean": "boolean",
              "date": {"type": "int", "logicalType": "date"},
              "timestamp": {"type": "long", "logicalType": "timestamp-micros"}}


class AvroWriter(BaseWriter):
    """Write each batch to part-<run>-<n>.avro under output_base."""

    def __init__(self, asset_definition, target_config, output_base):
        super().__init__(asset_definition, target_config, output_base)
        self.run = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.avro_schema = parse_schema({
            "type": "record", "name": asset_definition.name, "fields": [
                {"name": f["name"], "type": ["null", AVRO_TYPES.get(f.get("type", "string"), "string")]}
                for f in asset_definition.schema or []]})
        self.local = tempfile.mkdtemp(prefix="avro_writer_")

    def write_batch(self, records: List[Dict[str, Any]], file_counter: int) -> List[Dict[str, Any]]:
        if not records:
            return []
        path = os.path.join(self.local, f"part-{self.run}-{file_counter:05d}.avro")
        with open(path, "wb") as out:
            writer(out, self.avro_schema, [_avro_record(r) for r in records], codec="deflate")
        return [{"path": path, "size_bytes": os.path.getsize(path), "record_count": len(records)}]

    def commit_files(self, file_metadata: List[Dict[str, Any]]) -> Dict[str, Any]:
        fs, root = fsspec.core.url_to_fs(self.output_base)
        fs.makedirs(root, exist_ok=True)
        published = []
        for item in file_metadata:
            target = f"{root.rstrip('/')}/{os.path.basename(item['path'])}"
            fs.put_file(item["path"], target)
            os.unlink(item["path"])
            published.append({**item, "path": target})
        os.rmdir(self.local)
        with fs.open(f"{root.rstrip('/')}/_manifest-{self.run}.json", "w") as out:
            json.dump({"asset": self.asset_definition.name, "files": published}, out)
        return {"status": "success", "files_added": len(published),
                "total_records": sum(m["record_count"] for m in published)}


def _avro_record(record: Dict[str, Any]) -> Dict[str, Any]:
    """fastavro takes dates and aware datetimes for the logical types; naive datetimes are taken as UTC."""
    return {k: (v.replace(tzinfo=timezone.utc) if isinstance(v, datetime) and v.tzinfo is None else v)
            for k, v in record.items()}
