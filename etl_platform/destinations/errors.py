"""Typed errors of the destinations: each names what was wrong and keeps the cause.

They specialise the platform-wide errors of ``etl_platform.errors``, so a caller can catch either.
"""

from etl_platform.errors import ClientConnectionError, ConfigurationError, EtlPlatformError, ValidationError

__all__ = ["DestinationError", "ConfigurationError", "DestinationConnectionError", "ValidationError", "ReadError"]


class DestinationError(EtlPlatformError):
    """Base class of the errors only a writer or IO manager raises."""


class DestinationConnectionError(DestinationError, ClientConnectionError):
    """The store could not be reached or refused the request (network, credentials, missing bucket)."""


class ReadError(DestinationError):
    """The existing dataset could not be read (an upsert then stops instead of replacing it)."""
