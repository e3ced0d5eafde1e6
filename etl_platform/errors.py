"""The errors every part of the platform raises: each names the system, the place (never a secret) and the cause.

Readers (``sources/``) and writers (``destinations/``) share them, so one ``except ClientConnectionError``
catches an unreachable PostgreSQL as well as an unreachable bucket.
"""


class EtlPlatformError(Exception):
    """Base class of the platform's own errors."""


class ConfigurationError(EtlPlatformError, ValueError):
    """A configuration value is missing, unknown or not allowed (the message names the key and the allowed values)."""


class ClientConnectionError(EtlPlatformError, ConnectionError):
    """A system could not be reached, refused the login, or dropped the connection (system, host, cause)."""


class CredentialsRefusedError(ClientConnectionError):
    """A system answered and refused the credentials: retrying with the same ones cannot help (not retried)."""


class QueryError(EtlPlatformError):
    """A system rejected a query or read (missing table, bad SQL, bad request); the message says which."""


class ValidationError(EtlPlatformError):
    """The data cannot be written or read as asked (wrong type, schema that does not match)."""


def invalid_configuration(system: str, error: Exception,
                          error_class: type[ConfigurationError] = ConfigurationError) -> ConfigurationError:
    """A pydantic validation error as a :class:`ConfigurationError` naming each field; values are not echoed."""
    detail = validation_details(error) if callable(getattr(error, "errors", None)) else type(error).__name__
    return error_class(f"{system}: invalid configuration: {detail}")


def validation_details(error) -> str:
    """A pydantic validation error's problems, each ``field.path: message`` (a model-level one: its message
    alone); values are not echoed."""
    return "; ".join((f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "")
                     + e["msg"].removeprefix("Value error, ") for e in error.errors())
