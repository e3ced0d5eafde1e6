"""Where files go: the local filesystem, S3 (and S3-compatible stores), Azure Blob and GCS.

Each store differs only in how it connects: it returns an fsspec filesystem and the root path of
its bucket, container or folder. Credentials are fields read from the environment (``dg.EnvVar``
in Dagster, ``${VAR}`` in YAML) and are never put in messages or metadata.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import ClassVar

import fsspec
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from etl_platform.destinations.errors import ConfigurationError, ContainerNotFoundError, DestinationConnectionError
from etl_platform.extras import require


class Store(BaseModel):
    """A place for datasets: ``filesystem()`` to talk to it, ``root`` (no scheme) as the top folder."""

    kind: ClassVar[str]
    scheme: ClassVar[str]
    prefix: str = Field(default="", description="Folder below the bucket/container/root where datasets go.")

    def filesystem(self) -> fsspec.AbstractFileSystem:
        raise NotImplementedError

    @property
    def container(self) -> str:
        raise NotImplementedError

    @property
    def root(self) -> str:
        return "/".join(part.strip("/") for part in (self.container, self.prefix) if part.strip("/"))

    def uri(self, path: str) -> str:
        """The public URI of ``path`` (a path below the filesystem's root, as fsspec names it)."""
        return f"{self.scheme}://{path}"

    def put_file(self, fs: fsspec.AbstractFileSystem, local: str, target: str) -> None:
        """Upload one file whole: an object store's PUT (or completed multipart upload) is all or nothing."""
        fs.put_file(local, target)

    def move(self, fs: fsspec.AbstractFileSystem, source: str, target: str) -> None:
        """Publish a staged object: a server-side copy (atomic per object), then delete the staged one.

        Not ``fs.mv``: gcsfs tries GCS's move API first, which emulators answer 501 after retries."""
        fs.copy(source, target)
        fs.rm_file(source)

    def ensure_container(self, fs: fsspec.AbstractFileSystem) -> None:
        """Fail with a clear message when the bucket or container does not exist."""
        if not fs.exists(self.container):
            raise ContainerNotFoundError(f"{self.kind}: {self._container_field} {self.container!r} does not exist")

    _container_field: ClassVar[str] = "bucket"


class LocalStore(Store):
    kind: ClassVar[str] = "local"
    scheme: ClassVar[str] = "file"
    _container_field: ClassVar[str] = "base_path"
    base_path: str = Field(description="Folder the datasets are written below.")

    def filesystem(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem("file", auto_mkdir=True)

    @property
    def container(self) -> str:
        return os.path.abspath(self.base_path)

    @property
    def root(self) -> str:
        return os.path.join(self.container, self.prefix.strip("/")) if self.prefix.strip("/") else self.container

    def uri(self, path: str) -> str:
        return f"file://{path}"

    def ensure_container(self, fs) -> None:
        fs.makedirs(self.container, exist_ok=True)

    def move(self, fs, source: str, target: str) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)

    def put_file(self, fs, local: str, target: str) -> None:
        """Copy beside the target, then rename over it: readers see the old file or the new one."""
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = f"{target}.tmp-{uuid.uuid4().hex}"
        try:
            shutil.copyfile(local, temporary)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


class S3Store(Store):
    kind: ClassVar[str] = "s3"
    scheme: ClassVar[str] = "s3"
    bucket: str
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="For S3-compatible stores (MinIO, moto, Ceph, R2).")
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs
    aws_session_token: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs
    retries: int = Field(default=5, ge=1, description="Attempts per request before a write fails.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for an answer to a request.")

    @property
    def container(self) -> str:
        return self.bucket

    def ensure_container(self, fs: fsspec.AbstractFileSystem) -> None:
        """``info`` rather than ``exists``: s3fs's ``exists`` answers False for an endpoint it cannot reach, which
        would blame a missing bucket; a connection failure now reaches the caller with the endpoint's URL."""
        try:
            fs.info(self.bucket)
        except FileNotFoundError:
            self._raise_if_unreachable()  # s3fs also answers "not found" when the endpoint does not answer
            raise ContainerNotFoundError(f"s3: bucket {self.bucket!r} does not exist"
                                     + (f" at {self.endpoint_url}" if self.endpoint_url else "")) from None

    def _raise_if_unreachable(self) -> None:
        boto3 = require("boto3", "The S3 store")
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                              aws_access_key_id=self.aws_access_key_id, aws_secret_access_key=self.aws_secret_access_key,
                              aws_session_token=self.aws_session_token,
                              config=Config(connect_timeout=self.connect_timeout, read_timeout=self.connect_timeout,
                                            retries={"max_attempts": 1}))
        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError:
            return  # the service answered (404, 403, ...): the bucket is what is wrong
        except BotoCoreError as error:
            raise DestinationConnectionError(f"s3: {self.endpoint_url or 'AWS'} did not answer within "
                                             f"{self.connect_timeout:g} s: {type(error).__name__}") from error

    def filesystem(self) -> fsspec.AbstractFileSystem:
        s3fs = require("s3fs", "The S3 store")
        client_kwargs = {"region_name": self.region} if self.region else {}
        fs = s3fs.S3FileSystem(
            key=self.aws_access_key_id, secret=self.aws_secret_access_key, token=self.aws_session_token,
            endpoint_url=self.endpoint_url, client_kwargs=client_kwargs, skip_instance_cache=True,
            config_kwargs={"retries": {"max_attempts": self.retries, "mode": "standard"},
                           "connect_timeout": self.connect_timeout, "read_timeout": self.read_timeout},
        )
        fs.retries = self.retries  # s3fs retries on top of botocore; keep the total bounded
        return fs


class AzureBlobStore(Store):
    kind: ClassVar[str] = "azure_blob"
    scheme: ClassVar[str] = "abfs"
    _container_field: ClassVar[str] = "container"
    container_name: str = Field(alias="container")
    connection_string: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs
    account_name: str | None = None
    account_key: str | None = Field(default=None, repr=False)  # a secret: kept out of repr and logs
    retries: int = Field(default=4, ge=1, description="Attempts per request before a write fails (the Azure SDK's "
                         "default: 4).")
    retry_backoff: float = Field(default=15.0, ge=0, description="Seconds before the first retry; each later one "
                                 "waits 3^n s more (the Azure SDK's default: 15 s, so ~1 min before a write fails).")

    model_config = {"populate_by_name": True}

    @property
    def container(self) -> str:
        return self.container_name

    def filesystem(self) -> fsspec.AbstractFileSystem:
        adlfs = require("adlfs", "The Azure Blob store")
        if not (self.connection_string or self.account_name):
            raise ConfigurationError("azure_blob: set connection_string, or account_name (and account_key)")
        fs = adlfs.AzureBlobFileSystem(
            connection_string=self.connection_string, account_name=self.account_name, account_key=self.account_key,
            skip_instance_cache=True,
        )
        # adlfs builds its client with the SDK's retries (4 attempts, 15 s + 3^n s apart) and has no setting for
        # them: the same client again, with this store's. Nothing has been sent yet.
        client = fs.service_client
        fs.service_client = type(client)(
            account_url=client.url, credential=client.credential, retry_total=self.retries - 1,
            initial_backoff=self.retry_backoff, increment_base=3)
        return fs

    def uri(self, path: str) -> str:
        account = self.account_name or _connection_value(self.connection_string or "", "AccountName") or "account"
        return f"https://{account}.blob.core.windows.net/{path}" if not self.connection_string or \
            "BlobEndpoint" not in self.connection_string else \
            f"{_connection_value(self.connection_string, 'BlobEndpoint').rstrip('/')}/{path}"


class GCSStore(Store):
    kind: ClassVar[str] = "gcs"
    scheme: ClassVar[str] = "gs"
    bucket: str
    project: str | None = None
    endpoint_url: str | None = Field(default=None, description="Default: $STORAGE_EMULATOR_HOST when set.")
    token: str | None = Field(default=None, description="A service-account JSON file, 'anon', or None for defaults.")

    @property
    def container(self) -> str:
        return self.bucket

    def filesystem(self) -> fsspec.AbstractFileSystem:
        # gcsfs's default class probes each bucket's type over gRPC first (60 s time-outs against an emulator);
        # the core class speaks the JSON API only, which every bucket and emulator serves.
        GCSFileSystem = require("gcsfs.core", "The GCS store").GCSFileSystem

        endpoint = self.endpoint_url or os.environ.get("STORAGE_EMULATOR_HOST")
        token = self.token or ("anon" if endpoint else None)
        return GCSFileSystem(project=self.project, token=token, endpoint_url=endpoint, skip_instance_cache=True)


def _connection_value(connection_string: str, key: str) -> str | None:
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == key.lower():
            return value.strip()
    return None


STORES: dict[str, type[Store]] = {
    "local": LocalStore, "csv": LocalStore, "s3": S3Store, "azure_blob": AzureBlobStore, "gcs": GCSStore,
}


URL_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure_blob", "az": "azure_blob",
               "file": "local", "": "local"}


def store_kind(uri: str) -> str:
    """``s3``, ``gcs``, ``azure_blob`` or ``local`` for a URL (``s3://``, ``gs://``, ``abfs://``, a path)."""
    scheme = urlparse(uri).scheme
    scheme = scheme if len(scheme) > 1 else ""  # a Windows drive letter is not a scheme
    if scheme not in URL_SCHEMES:
        raise ConfigurationError(f"{uri!r}: scheme {scheme!r} is not one of "
                                 f"{', '.join(s for s in URL_SCHEMES if s)} (or a local path)")
    return URL_SCHEMES[scheme]


def store_for_uri(uri: str, options: dict) -> tuple[Store, str]:
    """A store and the dataset path below it for ``s3://``, ``gs://``, ``abfs://``/``az://`` or a local path."""
    parsed = urlparse(uri)
    scheme = store_kind(uri)
    if scheme == "local":
        local = parsed.path if parsed.scheme == "file" else uri
        if not os.path.isabs(local):  # relative to the working directory, as any path a user types
            return LocalStore(base_path=os.getcwd(), **options), local
        return LocalStore(base_path="/", **options), local.lstrip("/")
    field = "container" if scheme == "azure_blob" else "bucket"
    if not parsed.netloc:
        raise ConfigurationError(f"{uri!r} names no {field}")
    return STORES[scheme](**{field: parsed.netloc}, **options), parsed.path.strip("/")


def options_from_dagster_resource(resource) -> dict:
    """Store settings taken from one of Dagster's own integration resources, so credentials are set once.

    dagster-aws ``S3Resource`` → S3 settings; dagster-gcp ``GCSResource`` → the GCS project (credentials come
    from the environment, as for that resource); dagster-azure ``AzureBlobStorageResource`` or ``ADLS2Resource``
    with a key or SAS credential → a connection string."""
    kind = type(resource).__name__
    if kind == "S3Resource":
        return {"endpoint_url": resource.endpoint_url, "region": resource.region_name,
                "aws_access_key_id": resource.aws_access_key_id, "aws_secret_access_key": resource.aws_secret_access_key,
                "aws_session_token": resource.aws_session_token}
    if kind == "GCSResource":
        return {"project": resource.project}
    if kind == "AzureBlobStorageResource":
        url = resource.account_url if "://" in resource.account_url else f"https://{resource.account_url}"
        parsed = urlparse(url)
        account = parsed.path.strip("/").split("/")[0] or parsed.hostname.split(".")[0]
        secret = _azure_secret(kind, resource.credential)
        return {"connection_string": f"DefaultEndpointsProtocol={parsed.scheme};AccountName={account};{secret};"
                                     f"BlobEndpoint={url.rstrip('/')};"}
    if kind == "ADLS2Resource":  # ADLS Gen2 accounts serve the Blob API too: one connection string for both
        secret = _azure_secret(kind, resource.credential)
        return {"connection_string": f"DefaultEndpointsProtocol=https;AccountName={resource.storage_account};"
                                     f"{secret};EndpointSuffix={resource.endpoint_suffix};"}
    raise ConfigurationError(f"{kind} is not a Dagster storage resource we read settings from; use S3Resource, "
                             "GCSResource, AzureBlobStorageResource or ADLS2Resource")


def _azure_secret(resource: str, credential) -> str:
    """The connection-string part of a dagster-azure key or SAS credential."""
    if credential.credential_type == "key":
        return f"AccountKey={credential.key}"
    if credential.credential_type == "sas":
        return f"SharedAccessSignature={credential.token.lstrip('?')}"
    raise ConfigurationError(f"{resource}: credential type {credential.credential_type!r} is not supported here; use a "
                             "key or SAS credential, or set connection_string")
