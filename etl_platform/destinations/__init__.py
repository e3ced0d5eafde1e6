"""Destinations: datasets of files on the local disk, S3, Azure Blob and GCS.

One implementation (``Dataset``) over fsspec filesystems; stores differ only in how they connect.
Used three ways: as Dagster IO managers (``io_managers``), through the plain-Python writers
(``etl_platform.writers``) and by ``etl_platform.upsert``.
"""

from etl_platform.destinations.dataset import WRITE_MODES, Dataset, WriteResult
from etl_platform.destinations.errors import (
    ConfigurationError,
    ContainerNotFoundError,
    DestinationConnectionError,
    DestinationError,
    ReadError,
    ValidationError,
)
from etl_platform.destinations.formats import FileFormat
from etl_platform.destinations.stores import STORES, AzureBlobStore, GCSStore, LocalStore, S3Store, Store

__all__ = [
    "WRITE_MODES", "Dataset", "WriteResult", "ConfigurationError", "ContainerNotFoundError",
    "DestinationConnectionError", "DestinationError", "ReadError", "ValidationError", "FileFormat", "STORES",
    "AzureBlobStore", "GCSStore", "LocalStore", "S3Store", "Store",
]
