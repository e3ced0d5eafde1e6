"""Typed errors of the destinations: each names what was wrong and keeps the cause.

Each is a ``DestinationError`` (catch every writer failure at once) and also the platform-wide error of
its kind from ``etl_platform.errors`` (so ``except ClientConnectionError`` catches an unreachable bucket
as well as an unreachable database).
"""

from etl_platform import errors


class DestinationError(errors.EtlPlatformError):
    """Base class of every error a writer or IO manager raises."""


class ConfigurationError(DestinationError, errors.ConfigurationError):
    """A configuration value is missing or not allowed (the message names the key and the allowed values)."""


class DestinationConnectionError(DestinationError, errors.ClientConnectionError):
    """The store could not be reached or refused the request (network, credentials, missing bucket)."""


class CredentialsRefusedError(DestinationConnectionError, errors.CredentialsRefusedError):
    """The store answered and refused the credentials, or their permission for the request (HTTP 401/403, a login
    refused): writing again will not help, so a step's retry policy does not retry it."""


REFUSAL_SIGNS = ("403 Forbidden", "401 Unauthorized", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "AuthorizationFailure", "AuthenticationFailed", "Server failed to authenticate")


def refused_credentials(error: BaseException) -> bool:
    """Whether a store's error says it refused the credentials or their permission: fsspec's stores raise
    ``PermissionError`` for 401/403, azure-core's errors carry ``status_code``, delta-rs says it in its text."""
    if isinstance(error, PermissionError) or getattr(error, "status_code", None) in (401, 403):
        return True
    return any(sign in str(error) for sign in REFUSAL_SIGNS)


def unless_refused(kind: type[DestinationError], error: BaseException) -> type[DestinationError]:
    """``CredentialsRefusedError`` when ``error`` is a refusal of the credentials, else ``kind``."""
    return CredentialsRefusedError if refused_credentials(error) else kind


class ContainerNotFoundError(DestinationConnectionError, ConfigurationError):
    """The bucket or container does not exist. The store refused the request, so it is a connection error (seed 000's
    ``except ClientConnectionError`` catches it, as its example expects); it is also a configuration error, since
    the setting names something that is not there."""


class ValidationError(DestinationError, errors.ValidationError):
    """The data cannot be written as asked (wrong type, schema that does not match the existing dataset)."""


class ReadError(DestinationError):
    """The existing dataset could not be read (an upsert then stops instead of replacing it)."""
