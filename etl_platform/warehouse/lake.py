"""The Spark engine's tables: Parquet folders in a lake, where every change of a table is one atomic step.

Parquet has no transactions and the Delta jars cannot be had here, so each table keeps its own small commit log:

```
<lake>/<layer>/<table>/
    _commits/<version>.<token>     an empty file: "version <version> of the table is the folder _v<version>-<token>";
                                   the highest version is the table
    _v<version>-<token>/            that version's Parquet files, read recursively; each append is one more
        part-*.parquet              sub-folder of it (a leading "_" hides it from any listing of the table's folder,
                                    so a version nobody committed is never read as part of it)
        a<writer tag>/part-*.parquet
    .append-<process tag>/          an append being written (hidden: readers never list it)
```

- **Replacing a table** (``CREATE OR REPLACE TABLE … AS``, ``DELETE``, ``ALTER TABLE … ADD COLUMN``) writes the new
  rows to a new version folder, then creates its commit file: creating one file is the commit, on a local disk, a
  shared mount and an object store alike. Until then readers read the previous version; after it, the new one. A
  writer killed before the commit leaves a folder no commit names (removed by the next replace); after it, the
  table is replaced. The previous version is kept one replace longer, so a process whose catalog still points at
  it can finish reading; older ones are removed after each commit.
- **Appending** (``INSERT INTO``, Arrow batches) writes the rows to a hidden folder beside the version, then moves
  that folder into the version in one rename (atomic on a local disk, HDFS and ADLS Gen2; on S3 and GCS a rename
  copies object by object — docs/engines.md). If the table was replaced meanwhile, the append is taken back and
  fails, naming the table: never a lost write. Staging folders of killed writers are removed by later appends.
- Two writers committing the same version both see the other's commit file: each takes its own back and fails
  with a clear error, so neither replaces the other's rows unseen. The platform runs one writer at a time anyway
  (the ``warehouse`` concurrency pool).

Tables written before this layout (Parquet files directly in ``<table>/``) are read as they are; the first change
of one rewrites it as version 1.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from etl_platform.destinations.streams import abandoned, writer_tag
from etl_platform.warehouse.base import SqlScriptError

COMMITS = "_commits"
APPEND_STAGING = ".append-"
PROCESS_TAG = writer_tag()  # names this process's staging folders: a later writer can tell when it is gone


class LakeFiles:
    """The lake's folders through Hadoop's FileSystem (the JVM's), so a lake is any path or URL Spark writes:
    a local or shared folder, ``s3a://``, ``abfss://``, ``gs://`` (with their jars, docs/engines.md).

    Every change the Spark engine makes to the lake goes through this class (Spark's own Parquet writes too), so a
    test can stop a writer after any one of them, as a kill would."""

    def __init__(self, spark, root: str):
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(root).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return self._fs.exists(self._path(path))

    def mkdirs(self, path: str) -> None:
        self._fs.mkdirs(self._path(path))

    def rename(self, source: str, target: str) -> None:
        if not self._fs.rename(self._path(source), self._path(target)):
            raise OSError(f"could not rename {source} to {target}")

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def create_empty(self, path: str) -> None:
        """Create an empty file; fails if it exists."""
        self._fs.create(self._path(path), False).close()

    def write_parquet(self, frame, path: str, mode: str = "error", **options) -> None:
        """Spark writes ``frame`` as Parquet files into ``path``."""
        writer = frame.write.mode(mode)
        for key, value in options.items():
            writer = writer.option(key, value)
        writer.parquet(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        """A new file holding ``data`` (fails if it exists)."""
        stream = self._fs.create(self._path(path), False)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def children(self, path: str, folders: bool = True) -> list[str]:
        """Names of the folders (or files) directly in ``path`` (none when it does not exist)."""
        if not self.exists(path):
            return []
        return sorted(status.getPath().getName() for status in self._fs.listStatus(self._path(path))
                      if status.isDirectory() == folders)


@dataclass(frozen=True)
class Version:
    number: int
    token: str

    @property
    def folder(self) -> str:
        return f"_v{self.number}-{self.token}"

    @property
    def commit(self) -> str:
        return f"{self.number}.{self.token}"

    @classmethod
    def from_commit(cls, name: str) -> Version | None:
        number, _, token = name.partition(".")
        return cls(int(number), token) if number.isdigit() and token else None

    @classmethod
    def from_folder(cls, name: str) -> Version | None:
        number, _, token = name[2:].partition("-")
        return cls(int(number), token) if name.startswith("_v") and number.isdigit() and token else None


class ConcurrentWriteError(SqlScriptError):
    """Another writer changed the table at the same time; this change did not land."""


class LakeTable:
    """One table's folder: which version is the table, and the two ways to change it."""

    def __init__(self, files: LakeFiles, folder: str, name: str):
        self.files, self.folder, self.name = files, folder.rstrip("/"), name

    def versions(self) -> list[Version]:
        """The committed versions, oldest first."""
        found = (Version.from_commit(name) for name in self.files.children(f"{self.folder}/{COMMITS}", folders=False))
        return sorted((version for version in found if version is not None), key=lambda v: v.number)

    def current(self) -> Version | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def path(self, version: Version) -> str:
        """Where ``version``'s files are."""
        return f"{self.folder}/{version.folder}"

    def location(self) -> str | None:
        """The folder readers read: the current version's (or, for a table of the earlier layout, the table's);
        None when nothing was ever committed (a first write killed before its commit: there is no table)."""
        current = self.current()
        if current is not None:
            return self.path(current)
        return self.folder if self.has_root_files() else None

    def has_root_files(self) -> bool:
        """Parquet files directly in the table's folder: with no commit, a table of the earlier layout."""
        return bool(self.files.children(self.folder, folders=False))

    # -- replace ----------------------------------------------------------------------------------------------------

    def replace(self, write: Callable[[str], None]) -> Version:
        """The table becomes the rows ``write(folder)`` writes into the new version's folder, in one commit."""
        current = self.current()
        version = Version((current.number if current else 0) + 1, uuid.uuid4().hex[:12])
        target = self.path(version)
        try:
            write(target)
        except BaseException:
            self.files.delete(target)
            raise
        self._commit(version)
        self._remove_old(version)
        return version

    def _commit(self, version: Version) -> None:
        commits = f"{self.folder}/{COMMITS}"
        self.files.mkdirs(commits)
        try:
            self.files.create_empty(f"{commits}/{version.commit}")
        except Exception as error:
            raise ConcurrentWriteError(f"table {self.name}: another writer committed version {version.number} "
                                       f"first; this replace did not land ({type(error).__name__})") from error
        rivals = [v for v in self.versions() if v.number == version.number and v != version]
        if rivals:
            self.files.delete(f"{commits}/{version.commit}")
            self.files.delete(self.path(version))
            raise ConcurrentWriteError(f"table {self.name}: another writer committed version {rivals[0].number} "
                                       f"at the same time; this replace was taken back and did not land")

    def _remove_old(self, current: Version) -> None:
        """Keep the current and the previous version; remove older ones, folders no commit names (writers killed
        before their commit), and the files of the earlier layout."""
        committed = self.versions()
        keep = {v.folder for v in committed[-2:]}
        for version in committed[:-2]:
            self.files.delete(f"{self.folder}/{COMMITS}/{version.commit}")
        for name in self.files.children(self.folder):
            version = Version.from_folder(name)
            if version is not None and version.folder not in keep and version.number <= current.number:
                self.files.delete(f"{self.folder}/{name}")
        for name in self.files.children(self.folder, folders=False):  # the earlier layout's Parquet files
            self.files.delete(f"{self.folder}/{name}")

    # -- append -----------------------------------------------------------------------------------------------------

    def staging_folder(self) -> str:
        """This process's hidden folder for an append's files (readers never list it), empty: what a failed
        append of this process left there is removed, and so are the folders of writers that are gone."""
        self._remove_abandoned_staging()
        folder = f"{self.folder}/{APPEND_STAGING}{PROCESS_TAG}"
        if self.files.exists(folder):
            self.files.delete(folder)
        return folder

    def publish_append(self, staging: str, version: Version | None) -> None:
        """Move an append's staged files into ``version`` (the table's current one when the append began) in one
        rename; if a replace committed meanwhile, take them back and fail."""
        if not self.files.exists(staging):  # nothing was written (no rows)
            return
        if version is None:
            raise SqlScriptError(f"table {self.name} has no committed version to append to")
        segment = f"{self.path(version)}/a{writer_tag()}"
        self.files.rename(staging, segment)
        now = self.current()
        if now != version:
            self.files.delete(segment)
            raise ConcurrentWriteError(f"table {self.name} was replaced (version {version.number} → {now.number if now else '?'}) "
                                       f"while rows were appended to it; the append was taken back and did not land")

    def _remove_abandoned_staging(self) -> None:
        names = [name for name in self.files.children(self.folder) if name.startswith(APPEND_STAGING)]
        for name in abandoned(names, APPEND_STAGING):
            self.files.delete(f"{self.folder}/{name}")
