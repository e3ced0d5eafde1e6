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


class ContainerNotFoundError(DestinationConnectionError, ConfigurationError):
    """The bucket or container does not exist. The store refused the request, so it is a connection error (seed 000's
    ``except ClientConnectionError`` catches it, as its example expects); it is also a configuration error, since
    the setting names something that is not there."""


class ValidationError(DestinationError, errors.ValidationError):
    """The data cannot be written as asked (wrong type, schema that does not match the existing dataset)."""


class ReadError(DestinationError):
    """The existing dataset could not be read (an upsert then stops instead of replacing it)."""
