"""What a write of a file dataset (plain files or a Delta table) reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class WriteResult:
    uris: list[str] = field(default_factory=list)
    records_written: int = 0
    size_bytes: int = 0
    seconds: float = 0.0
    schema: pa.Schema | None = None  # of the rows written
    version: int | None = None  # the table version this write committed (Delta datasets)

    @property
    def files(self) -> int:
        return len(self.uris)
