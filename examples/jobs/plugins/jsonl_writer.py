"""A custom writer: each batch one JSON-lines file under output_base, listed in a manifest by commit_files."""

import json
import os
from typing import Any, Dict, List

from etl_platform.plugins import BaseWriter


class JSONLinesWriter(BaseWriter):
    """Write each batch as part-<n>.jsonl; commit_files writes _manifest.json naming them (readers trust it)."""

    def write_batch(self, records: List[Dict[str, Any]], file_counter: int) -> List[Dict[str, Any]]:
        os.makedirs(self.output_base, exist_ok=True)
        path = os.path.join(self.output_base, f"part-{file_counter:05d}.jsonl")
        with open(path, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, default=str) + "\n")
        return [{"path": path, "size_bytes": os.path.getsize(path), "record_count": len(records)}]

    def commit_files(self, file_metadata: List[Dict[str, Any]]) -> Dict[str, Any]:
        manifest = os.path.join(self.output_base, "_manifest.json")
        with open(manifest, "w", encoding="utf-8") as out:
            json.dump({"asset": self.asset_definition.name, "files": file_metadata}, out)
        return {"status": "success", "files_added": len(file_metadata),
                "total_records": sum(m["record_count"] for m in file_metadata)}
