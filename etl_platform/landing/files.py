"""Finding landing files, telling whether one changed since it was ingested, and opening them.

Landing files may be compressed (``users_1.csv.gz``, ``users_1.csv.zst``): a pattern such as
``users*.csv`` also matches those names, and :func:`open_binary` decompresses while reading.
"""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import dagster as dg
from pydantic import Field

from etl_platform import settings
from etl_platform.settings import BAD_FILES_ENV, bad_file_policy, number_from_env

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
SETTLE_ENV = "ETL_PLATFORM_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 10.0


class LandingSettingError(ValueError):
    """A landing setting (resource field or environment variable) has a value that is not allowed."""


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

    @property
    def compression(self) -> str | None:
        """``gzip`` or ``zstd`` for ``*.gz`` / ``*.zst`` files, else None."""
        return COMPRESSIONS.get(self.path.suffix)

    def age_seconds(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.modified_ns / 1e9


def open_binary(file: LandingFile) -> BinaryIO:
    """The file's bytes, decompressed when it is ``.gz`` or ``.zst``."""
    return decompressed(open(file.path, "rb"), file.compression)


def decompressed(raw: BinaryIO, compression: str | None) -> BinaryIO:
    """``raw`` (a local or remote file object) read through its compression: ``gzip``, ``zstd`` or ``None``."""
    if compression == "gzip":
        unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
        unzipped.myfileobj = raw  # GzipFile closes this one on close(), as when it opens a path itself
        return unzipped
    if compression == "zstd":
        return io.BufferedReader(_ZstdReader(raw), buffer_size=1 << 20)
    return raw


class ZstdStreamError(ValueError):
    """A zstd stream that is truncated or corrupt."""


class _ZstdReader(io.RawIOBase):
    """Decompresses a zstd file (any number of frames) with Arrow's zstd codec; a stream that ends inside a
    frame, or is not zstd, raises ``ZstdStreamError`` (an error of the file itself, not of reading it: the
    source's own errors, e.g. a dropped connection, pass as they are)."""

    def __init__(self, source: BinaryIO):
        import pyarrow as pa

        self._source = source
        self._stream = pa.CompressedInputStream(pa.PythonFile(source, mode="r"), "zstd")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._stream.read(len(buffer))
        except OSError as error:
            if type(error) is not OSError:  # pyarrow raises plain OSError; the source's errors keep their class
                raise
            raise ZstdStreamError(f"{error} (a zstd stream that is truncated or corrupt)") from None
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


def pattern_globs(pattern: str) -> tuple[str, ...]:
    """The globs of an entity's landing files: ``pattern``, and it compressed (``.gz`` / ``.zst``)."""
    return (pattern, *(pattern + suffix for suffix in COMPRESSIONS))


def discover_files(folder: Path, pattern: str) -> list[LandingFile]:
    """Regular files in ``folder`` matching the glob ``pattern`` (or it plus ``.gz`` / ``.zst``), in name order."""
    if not folder.is_dir():
        return []
    found = {}
    for glob in pattern_globs(pattern):
        for path in folder.glob(glob):
            if path.is_file():
                stat = path.stat()
                name = path.relative_to(folder).as_posix()
                found[name] = LandingFile(path, name, stat.st_size, stat.st_mtime_ns)
    return sorted(found.values(), key=lambda f: f.name)


def settled(files: list[LandingFile], settle_seconds: float, now: float | None = None) -> list[LandingFile]:
    """The files not modified in the last ``settle_seconds`` (younger ones may still be being written)."""
    now = time.time() if now is None else now
    return [f for f in files if f.age_seconds(now) >= settle_seconds]


class LandingZone(dg.ConfigurableResource):
    """The root folder files land in; each domain reads its own sub-folder (``<root>/<domain>``)."""

    root: str | None = Field(
        default=None, description="Landing root. Default: $ETL_PLATFORM_LANDING, else $ETL_PLATFORM_HOME/landing."
    )
    bad_files: str | None = Field(
        default=None,
        description="What to do with a file that cannot be read as its entity (not text, not UTF-8, truncated, "
        "required columns missing): 'block' (the blocking bronze check fails naming the file) or 'reject' (the "
        f"file is recorded as rejected and the run goes on). Default: ${BAD_FILES_ENV}, else 'block'.",
    )
    settle_seconds: float | None = Field(
        default=None,
        description="A file modified less than this many seconds ago may still be arriving: a run waits for it "
        f"to settle, the sensor leaves it for a later tick. Default: ${SETTLE_ENV}, else {DEFAULT_SETTLE_SECONDS:g}.",
    )

    def folder(self, domain: str) -> Path:
        return (Path(self.root) if self.root else settings.landing_root()) / domain

    @property
    def bad_file_policy(self) -> Literal["block", "reject"]:
        return bad_file_policy(self.bad_files, "LandingZone.bad_files", LandingSettingError)

    @property
    def settle_time(self) -> float:
        if self.settle_seconds is not None:
            return float(self.settle_seconds)
        return number_from_env(SETTLE_ENV, DEFAULT_SETTLE_SECONDS, float, LandingSettingError)

    def wait_for_files(
        self, folder: Path, pattern: str, log: Callable[[str], None] | None = None
    ) -> tuple[list[LandingFile], list[LandingFile]]:
        """``(ready, still_arriving)``: the matching files, after waiting for those modified too recently.

        A file is ready when it was last modified at least the settle time ago, or when it has not changed
        while watched for that long (so a file dated in the future by a skewed clock does not wait forever).
        The wait lasts at most three settle times; a file still changing then is left for the next run.
        """
        settle = self.settle_time
        started = time.monotonic()
        first_seen: dict[str, tuple[str, float]] = {}  # name -> (fingerprint, when it was first seen so)
        while True:
            files = discover_files(folder, pattern)
            now, clock = time.time(), time.monotonic()
            ready, young, waits = [], [], []
            for file in files:
                fingerprint, since = first_seen.get(file.name, (None, clock))
                if fingerprint != file.fingerprint:
                    first_seen[file.name], since = (file.fingerprint, clock), clock
                age, watched = file.age_seconds(now), clock - since
                if age >= settle or watched >= settle:
                    ready.append(file)
                else:
                    young.append(file)
                    waits.append(min(settle - age if age >= 0 else settle, settle - watched))
            if not young or clock - started >= 3 * settle:
                return ready, young
            wait = max(min(min(waits), started + 3 * settle - clock), 0.05)
            if log:
                log(f"waiting {wait:.1f} s for {', '.join(f.name for f in young)} to finish arriving "
                    f"(modified less than {settle:g} s ago)")
            time.sleep(wait)
