"""Finding landing files and telling whether one changed since it was ingested."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from etl_platform import settings


@dataclass(frozen=True)
class LandingFile:
    """A file in the landing zone. ``name`` is its path relative to the domain folder."""

    path: Path
    name: str
    size: int
    modified_ns: int

    @property
    def fingerprint(self) -> str:
        """Size and modification time: a rewritten or touched file counts as changed (as for make or rsync)."""
        return f"{self.size}:{self.modified_ns}"


def discover_files(folder: Path, pattern: str) -> list[LandingFile]:
    """Regular files in ``folder`` matching the glob ``pattern``, in file-name order."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(pattern):
        if path.is_file():
            stat = path.stat()
            found.append(LandingFile(path, path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(found, key=lambda f: f.name)


class LandingZone(dg.ConfigurableResource):
    """The root folder files land in; each domain reads its own sub-folder (``<root>/<domain>``)."""

    root: str | None = Field(
        default=None, description="Landing root. Default: $ETL_PLATFORM_LANDING, else $ETL_PLATFORM_HOME/landing."
    )

    def folder(self, domain: str) -> Path:
        return (Path(self.root) if self.root else settings.landing_root()) / domain
