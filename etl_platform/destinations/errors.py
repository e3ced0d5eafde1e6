"""Typed errors of the destinations: each names what was wrong and keeps the cause."""


class DestinationError(Exception):
    """Base class of every error a writer or IO manager raises."""


class ConfigurationError(DestinationError):
    """A configuration value is missing or not allowed (the message names the key and the allowed values)."""


class DestinationConnectionError(DestinationError):
    """The store could not be reached or refused the request (network, credentials, missing bucket)."""


class ValidationError(DestinationError):
    """The data cannot be written as asked (wrong type, schema that does not match the existing dataset)."""


class ReadError(DestinationError):
    """The existing dataset could not be read (an upsert then stops instead of replacing it)."""
