"""Seed 004's reader/writer/upsert framework on S3-compatible storage, every named part of it, from this module.

    from etl_platform.reader_writer import DataReaderWriter, Upsert

    reader_writer = DataReaderWriter(backend="pandas", bucket_name="lake", endpoint_url="https://s3.amazonaws.com",
                                     access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"])
    reader_writer.write(frame, "datasets/users", format="parquet")     # a dataset folder (or "x/users.csv": one file)
    frame = reader_writer.read("datasets/users")                       # pandas.DataFrame (pyspark: a Spark DataFrame)
    reader_writer.upsert(changes, "datasets/users", upsert_method="by_id", id_columns=["user_id"])

    Upsert(backend="pyspark", bucket_name="lake", endpoint_url=...).upsert(
        new_data, "datasets/users", "by_id_and_modification", ["user_id"], modification_column="updated_at")

The seed's parts, each a thin face over the platform's datasets (``destinations/``):

- interfaces: ``DataReader.read(path, **kwargs)``, ``DataWriter.write(data, path, **kwargs)``,
  ``Upserter.upsert(new_data, target_path, id_columns, modification_column=None)``;
- backends: ``PandasDataReader`` / ``PandasDataWriter`` / ``PandasUpserter`` and ``PySparkDataReader`` /
  ``PySparkDataWriter`` / ``PySparkUpserter``: they read and write the same files, so they give the same rows and
  types; the backend decides what ``read`` returns and which engine merges an upsert;
- ``S3Client``: one bucket's connection (credentials once), shared by readers, writers and upserters, with
  ``upload_file``, ``download_file``, ``list_objects``, ``exists`` and ``delete_object``;
- factories: ``DataReaderWriterFactory.create_reader/create_writer(backend, client)`` and
  ``UpsertFactory.create_upserter(backend, upsert_method, client)``;
- core: ``DataReaderWriter`` and ``Upsert``.

Where the seed is silent: a keyword argument a method does not take is refused naming it (never ignored); an
upsert whose target cannot be read fails and leaves it as it was; the pandas and pyspark backends share datasets
(naive and UTC timestamps are the same column, ``tables.align_timestamps``).
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import pyarrow as pa

from etl_platform.destinations.dataset import Dataset, store_call
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.stores import S3Store
from etl_platform.destinations.tables import align_timestamps, to_arrow
from etl_platform.errors import ConfigurationError
from etl_platform.extras import require
from etl_platform.upsert import BACKENDS, METHODS, spark_frame, upsert

__all__ = ["DataReader", "DataWriter", "Upserter", "PandasDataReader", "PandasDataWriter", "PandasUpserter",
           "PySparkDataReader", "PySparkDataWriter", "PySparkUpserter", "S3Client", "DataReaderWriterFactory",
           "UpsertFactory", "DataReaderWriter", "Upsert"]

EXTENSIONS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "json"}


def _no_other_arguments(method: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ConfigurationError(f"{method}() got unknown argument(s) {sorted(kwargs)}")


def _backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigurationError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


# ---------------------------------------------------------------- client


class S3Client:
    """One bucket of S3 or an S3-compatible store (MinIO, moto, Ceph, R2); the secret key stays out of ``repr``."""

    def __init__(self, bucket_name: str | None = None, endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, region_name: str | None = None):
        if not bucket_name:
            raise ConfigurationError("bucket_name is required")
        self.store = S3Store(bucket=bucket_name, endpoint_url=endpoint_url, aws_access_key_id=access_key,
                             aws_secret_access_key=secret_key, region=region_name)
        self._fs = None

    def __repr__(self) -> str:
        endpoint = f", endpoint_url={self.store.endpoint_url!r}" if self.store.endpoint_url else ""
        return f"S3Client(bucket_name={self.bucket_name!r}{endpoint})"

    @property
    def bucket_name(self) -> str:
        return self.store.bucket

    @property
    def fs(self):
        if self._fs is None:
            self._fs = self.store.filesystem()
        return self._fs

    @property
    def storage_options(self) -> dict[str, str]:
        """The settings ``etl_platform.upsert.upsert`` takes for this bucket."""
        options = {"endpoint_url": self.store.endpoint_url, "aws_access_key_id": self.store.aws_access_key_id,
                   "aws_secret_access_key": self.store.aws_secret_access_key, "region": self.store.region}
        return {key: value for key, value in options.items() if value}

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket_name}/{key.strip('/')}".rstrip("/")

    def _path(self, key: str) -> str:
        key = key.strip("/")
        if not key or ".." in key.split("/"):
            raise ConfigurationError(f"key {key!r} must name an object inside the bucket (no .. parts)")
        return f"{self.bucket_name}/{key}"

    def upload_file(self, local_path: str | Path, key: str) -> str:
        """Upload a local file as the object ``key`` (one PUT, whole or not at all); its URI."""
        if not Path(local_path).is_file():
            raise ConfigurationError(f"upload_file: {local_path} is not a file")
        path = self._path(key)
        store_call(self.store, "check", self.bucket_name, lambda: self.store.ensure_container(self.fs))
        store_call(self.store, "upload", path, lambda: self.store.put_file(self.fs, str(local_path), path))
        return self.uri(key)

    def download_file(self, key: str, local_path: str | Path) -> Path:
        """Download the object ``key`` to ``local_path``."""
        path = self._path(key)
        if not store_call(self.store, "check", path, lambda: self.fs.exists(path)):
            raise ConfigurationError(f"download_file: no object {self.uri(key)}")
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        store_call(self.store, "download", path, lambda: self.fs.get_file(path, str(local_path)))
        return Path(local_path)

    def list_objects(self, prefix: str = "") -> list[str]:
        """The keys of the objects below ``prefix``, sorted."""
        root = f"{self.bucket_name}/{prefix.strip('/')}".rstrip("/")
        store_call(self.store, "check", self.bucket_name, lambda: self.store.ensure_container(self.fs))
        if not store_call(self.store, "list", root, lambda: self.fs.exists(root)):
            return []
        found = store_call(self.store, "list", root, lambda: self.fs.find(root))
        return sorted(path[len(self.bucket_name) + 1:] for path in found)

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return bool(store_call(self.store, "check", path, lambda: self.fs.exists(path)))

    def delete_object(self, key: str) -> None:
        """Delete the object ``key`` (one object: a folder is refused, so a typo cannot empty a dataset)."""
        path = self._path(key)
        if not store_call(self.store, "check", path, lambda: self.fs.isfile(path)):
            raise ConfigurationError(f"delete_object: {self.uri(key)} is not an object")
        store_call(self.store, "delete", path, lambda: self.fs.rm_file(path))

    def dataset(self, path: str, format: str | None = None,
                partition_by: Sequence[str] = ()) -> tuple[Dataset, str | None]:
        """The dataset holding ``path``, and the one file ``path`` names when it has a data file's extension."""
        extension = posixpath.splitext(path)[1].lower()
        if extension in EXTENSIONS:
            folder, name = posixpath.split(path.strip("/"))
            return Dataset(self.store, folder, FileFormat(format or EXTENSIONS[extension]), _fs=self._fs), name
        return Dataset(self.store, path, FileFormat(format or "parquet"), tuple(partition_by), _fs=self._fs), None

    def read_table(self, path: str, format: str | None = None, version: int | None = None, as_of=None) -> pa.Table:
        dataset, file = self.dataset(path, format)
        if file and (version is not None or as_of is not None):
            raise ConfigurationError(f"{path}: a version can only be read of a Delta dataset (format='delta'), "
                                     "not of one file")
        table = dataset._read_paths([f"{dataset.location}/{file}"]) if file else dataset.read(version=version,
                                                                                              as_of=as_of)
        if table is None:
            raise ConfigurationError(f"no {dataset.file_format.format} data at {self.store.uri(dataset.location)}"
                                     f"{'/' + file if file else ''}")
        return table

    def write_table(self, table: pa.Table, path: str, format: str | None = None, mode: str = "overwrite",
                    partition_by: Sequence[str] = ()) -> dict[str, Any]:
        dataset, file = self.dataset(path, format, partition_by)
        if file:
            if mode != "overwrite":
                raise ConfigurationError(f"{path}: mode {mode!r} needs a dataset folder (no file extension); one "
                                         "object can only be written whole")
            result = dataset.write_file(table, file)
        else:
            if mode == "append":  # pandas and Spark frames share datasets: naive and UTC timestamps are one column
                table = align_timestamps(table, dataset.schema())
            result = dataset.write(table, mode=mode)
        return {"success": True, "records_written": result.records_written, "size_bytes": result.size_bytes,
                "files": result.files, "uris": result.uris}


# ---------------------------------------------------------------- interfaces


class DataReader(ABC):
    """Reads the file or dataset folder at a path."""

    @abstractmethod
    def read(self, path: str, **kwargs: Any) -> Any:
        ...


class DataWriter(ABC):
    """Writes data to a path: a dataset folder, or one file when the path has a data file's extension."""

    @abstractmethod
    def write(self, data: Any, path: str, **kwargs: Any) -> dict[str, Any]:
        ...


class Upserter(ABC):
    """Merges new rows into the dataset at a path by key, with the method it was made for."""

    @abstractmethod
    def upsert(self, new_data: Any, target_path: str, id_columns: list[str],
               modification_column: str | None = None) -> dict[str, Any]:
        ...


# ---------------------------------------------------------------- backends


class _Backend:
    backend: ClassVar[str] = ""

    def __init__(self, client: S3Client | None = None, spark: Any = None):
        self.client = client
        self.spark = spark

    def _client(self) -> S3Client:
        if self.client is None:
            raise ConfigurationError(f"{type(self).__name__} needs an S3Client (S3Client(bucket_name=...))")
        return self.client

    def _spark(self):
        if self.spark is not None:
            return self.spark
        from etl_platform.spark_session import spark_session

        return spark_session()


class _Reader(_Backend, DataReader):
    def read(self, path: str, format: str | None = None, version: int | None = None, as_of=None,
             **kwargs: Any) -> Any:
        """The file or dataset folder at ``path`` (a key in the client's bucket) as this backend's DataFrame;
        ``format='delta'`` reads a Delta table, at ``version`` or ``as_of`` a time if given (time travel)."""
        _no_other_arguments(f"{type(self).__name__}.read", kwargs)
        return self._frame(self._client().read_table(path, format, version, as_of))

    def _frame(self, table: pa.Table) -> Any:
        raise NotImplementedError


class PandasDataReader(_Reader):
    backend = "pandas"

    def _frame(self, table: pa.Table):
        require("pandas", "DataReaderWriter's pandas backend")
        return table.to_pandas()


class PySparkDataReader(_Reader):
    backend = "pyspark"

    def _frame(self, table: pa.Table):
        return spark_frame(self._spark(), table)


class _Writer(_Backend, DataWriter):
    def write(self, data: Any, path: str, format: str | None = None, mode: str = "overwrite",
              partition_by: Sequence[str] = (), **kwargs: Any) -> dict[str, Any]:
        """Write ``data`` (pandas, Spark, Arrow, list of dicts) as the dataset (or single file) ``path``; ``mode``
        overwrite (default, one publish), append, or upsert through an ``Upserter``."""
        _no_other_arguments(f"{type(self).__name__}.write", kwargs)
        if mode == "upsert":
            raise ConfigurationError("write(mode='upsert'): use upsert(...) (or an Upserter), which takes the key")
        return self._client().write_table(to_arrow(data), path, format, mode, partition_by)


class PandasDataWriter(_Writer):
    backend = "pandas"


class PySparkDataWriter(_Writer):
    backend = "pyspark"


class _Upserter(_Backend, Upserter):
    def __init__(self, client: S3Client | None = None, upsert_method: str = "by_id", spark: Any = None):
        super().__init__(client, spark)
        if upsert_method not in METHODS:
            raise ConfigurationError(f"upsert_method {upsert_method!r} is not one of {', '.join(METHODS)}")
        self.upsert_method = upsert_method

    def upsert(self, new_data: Any, target_path: str, id_columns: list[str],
               modification_column: str | None = None, format: str = "parquet") -> dict[str, Any]:
        """Merge ``new_data`` into the dataset ``target_path``: a key in the client's bucket, or without a client a
        URI (s3://, az://, gs://, file://) or a local folder."""
        if self.client is not None:
            target, options = self.client.uri(target_path), self.client.storage_options
        else:
            target, options = target_path, {}
        return upsert(new_data, target, method=self.upsert_method, id_columns=id_columns,
                      modification_column=modification_column, backend=self.backend, format=format,
                      storage_options=options, spark=self.spark)


class PandasUpserter(_Upserter):
    backend = "pandas"


class PySparkUpserter(_Upserter):
    backend = "pyspark"


# ---------------------------------------------------------------- factories


class DataReaderWriterFactory:
    READERS: ClassVar[dict[str, type[_Reader]]] = {"pandas": PandasDataReader, "pyspark": PySparkDataReader}
    WRITERS: ClassVar[dict[str, type[_Writer]]] = {"pandas": PandasDataWriter, "pyspark": PySparkDataWriter}

    @classmethod
    def create_reader(cls, backend: str, client: S3Client, spark: Any = None) -> DataReader:
        return cls.READERS[_backend(backend)](client, spark)

    @classmethod
    def create_writer(cls, backend: str, client: S3Client, spark: Any = None) -> DataWriter:
        return cls.WRITERS[_backend(backend)](client, spark)


class UpsertFactory:
    UPSERTERS: ClassVar[dict[str, type[_Upserter]]] = {"pandas": PandasUpserter, "pyspark": PySparkUpserter}

    @classmethod
    def create_upserter(cls, backend: str, upsert_method: str, client: S3Client | None = None,
                        spark: Any = None) -> Upserter:
        return cls.UPSERTERS[_backend(backend)](client, upsert_method, spark)


# ---------------------------------------------------------------- core


class DataReaderWriter:
    def __init__(self, backend: str = "pandas", bucket_name: str | None = None, endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, region_name: str | None = None,
                 spark=None):
        self.backend = _backend(backend)
        self.spark = spark
        self.client = S3Client(bucket_name, endpoint_url, access_key, secret_key, region_name)
        self.reader = DataReaderWriterFactory.create_reader(backend, self.client, spark)
        self.writer = DataReaderWriterFactory.create_writer(backend, self.client, spark)

    def __repr__(self) -> str:  # the secret key stays out of logs
        return f"DataReaderWriter(backend={self.backend!r}, bucket_name={self.client.bucket_name!r})"

    def read(self, path: str, **kwargs: Any):
        """The file or dataset folder at ``path`` as a pandas (or Spark) DataFrame."""
        return self.reader.read(path, **kwargs)

    def write(self, data: Any, path: str, **kwargs: Any) -> dict:
        """Write ``data`` (pandas, Spark, Arrow, list of dicts) as the dataset (or single file) ``path``."""
        return self.writer.write(data, path, **kwargs)

    def upsert(self, new_data: Any, target_path: str, upsert_method: str, id_columns: list[str],
               modification_column: str | None = None, format: str = "parquet") -> dict:
        upserter = UpsertFactory.create_upserter(self.backend, upsert_method, self.client, self.spark)
        return upserter.upsert(new_data, target_path, id_columns, modification_column, format=format)


class Upsert:
    """Seed 004's ``Upsert``: ``Upsert(backend, bucket_name, endpoint_url, access_key, secret_key).upsert(new_data,
    target_path, upsert_method, id_columns, modification_column=None)``. Without ``bucket_name``, ``target_path``
    is a URI (s3://, az://, gs://, file://) or a local folder (credentials then from the environment)."""

    def __init__(self, backend: str = "pandas", bucket_name: str | None = None, endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, region_name: str | None = None,
                 spark: Any = None):
        self.backend = _backend(backend)
        self.spark = spark
        self.client = S3Client(bucket_name, endpoint_url, access_key, secret_key, region_name) if bucket_name \
            else None

    def __repr__(self) -> str:
        where = f", bucket_name={self.client.bucket_name!r}" if self.client else ""
        return f"Upsert(backend={self.backend!r}{where})"

    def upsert(self, new_data: Any, target_path: str, upsert_method: str, id_columns: list[str],
               modification_column: str | None = None, format: str = "parquet") -> dict:
        upserter = UpsertFactory.create_upserter(self.backend, upsert_method, self.client, self.spark)
        return upserter.upsert(new_data, target_path, id_columns, modification_column, format=format)
