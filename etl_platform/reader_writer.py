"""Seed 004's reader/writer on S3-compatible storage, with a pandas or a pyspark backend.

    from etl_platform.reader_writer import DataReaderWriter

    reader_writer = DataReaderWriter(backend="pandas", bucket_name="lake", endpoint_url="https://s3.amazonaws.com",
                                     access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"])
    reader_writer.write(frame, "datasets/users", format="parquet")     # a dataset folder (or "x/users.csv": one file)
    frame = reader_writer.read("datasets/users")                       # pandas.DataFrame (pyspark: a Spark DataFrame)
    reader_writer.upsert(changes, "datasets/users", upsert_method="by_id", id_columns=["user_id"])

Both backends read and write the same files through the platform's datasets (``destinations/``), so they
give the same rows and types; the backend only decides what ``read`` returns and how ``upsert`` merges.
"""

from __future__ import annotations

import posixpath
from typing import Any, Sequence

from etl_platform.destinations.dataset import Dataset
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.stores import S3Store
from etl_platform.destinations.tables import to_arrow
from etl_platform.errors import ConfigurationError
from etl_platform.upsert import BACKENDS, spark_frame, upsert

EXTENSIONS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "json"}


class DataReaderWriter:
    def __init__(self, backend: str = "pandas", bucket_name: str | None = None, endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, region_name: str | None = None,
                 spark=None):
        if backend not in BACKENDS:
            raise ConfigurationError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if not bucket_name:
            raise ConfigurationError("bucket_name is required")
        self.backend = backend
        self.spark = spark
        self.store = S3Store(bucket=bucket_name, endpoint_url=endpoint_url, aws_access_key_id=access_key,
                             aws_secret_access_key=secret_key, region=region_name)
        self._storage_options = {"endpoint_url": endpoint_url, "aws_access_key_id": access_key,
                                 "aws_secret_access_key": secret_key, "region": region_name}

    def __repr__(self) -> str:  # the secret key stays out of logs
        return f"DataReaderWriter(backend={self.backend!r}, bucket_name={self.store.bucket!r})"

    def _dataset(self, path: str, format: str | None, partition_by: Sequence[str] = ()) -> tuple[Dataset, str | None]:
        """The dataset holding ``path``, and the one file ``path`` names when it has a data file's extension."""
        extension = posixpath.splitext(path)[1].lower()
        if extension in EXTENSIONS:
            folder, name = posixpath.split(path.strip("/"))
            return Dataset(self.store, folder, FileFormat(format or EXTENSIONS[extension])), name
        return Dataset(self.store, path, FileFormat(format or "parquet"), tuple(partition_by)), None

    def read(self, path: str, format: str | None = None, **kwargs: Any):
        """The file or dataset folder at ``path`` as a pandas (or Spark) DataFrame."""
        dataset, file = self._dataset(path, format)
        table = dataset._read_paths([f"{dataset.location}/{file}"]) if file else dataset.read()
        if table is None:
            raise ConfigurationError(f"no {dataset.file_format.format} data at {self.store.uri(dataset.location)}"
                                     f"{'/' + file if file else ''}")
        if self.backend == "pyspark":
            return spark_frame(self._spark(), table)
        return table.to_pandas()

    def write(self, data: Any, path: str, format: str | None = None, mode: str = "overwrite",
              partition_by: Sequence[str] = (), **kwargs: Any) -> dict:
        """Write ``data`` (pandas, Spark, Arrow, list of dicts) as the dataset (or single file) ``path``."""
        dataset, file = self._dataset(path, format, partition_by)
        table = to_arrow(data)
        if file:
            result = dataset.write_file(table, file)
        else:
            result = dataset.write(table, mode=mode)
        return {"success": True, "records_written": result.records_written, "size_bytes": result.size_bytes,
                "files": result.files, "uris": result.uris}

    def upsert(self, new_data: Any, target_path: str, upsert_method: str, id_columns: list[str],
               modification_column: str | None = None, format: str = "parquet") -> dict:
        return upsert(new_data, f"s3://{self.store.bucket}/{target_path.strip('/')}", method=upsert_method,
                      id_columns=id_columns, modification_column=modification_column, backend=self.backend,
                      format=format, storage_options={k: v for k, v in self._storage_options.items() if v})

    def _spark(self):
        if self.spark is not None:
            return self.spark
        from etl_platform.spark_session import spark_session

        return spark_session()
