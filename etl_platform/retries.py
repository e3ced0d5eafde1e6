"""Retries of the steps that talk to other systems: seed 002's Airflow ``default_args`` (3 retries, exponential
backoff) as a Dagster ``RetryPolicy``, in one place.

Which steps: source assets (``bronze/<name>``: the rows and the source's state commit together and queue messages
are acknowledged after, so a retry reads from where the last commit left), exports and YAML-job assets whose write
is idempotent (``overwrite`` or ``upsert``). An ``append`` export or job is not retried: a retry could add again the
rows a failed attempt had already written. The SQL steps of the medallion are not retried: a failed statement on
the same data fails again.

Which failures: a connection failure (``ClientConnectionError``: a host that does not answer, a dropped
connection) is retried; any other error of the platform (a bad setting, refused credentials, a missing bucket or
table, data that does not fit) fails the step at once, through ``step_failure``. Other exceptions follow the policy.

Settings, read when the definitions load: ``ETL_PLATFORM_STEP_RETRIES`` (default 3; 0 turns retries off) and
``ETL_PLATFORM_STEP_RETRY_DELAY`` (seconds, default 30: Dagster's exponential backoff waits (2^n - 1) times it before
retry n, so about 30, 90 and 210 s, each plus or minus the delay as jitter).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from etl_platform.errors import ClientConnectionError, ConfigurationError, CredentialsRefusedError
from etl_platform.settings import number_from_env

RETRIES_ENV = "ETL_PLATFORM_STEP_RETRIES"
DELAY_ENV = "ETL_PLATFORM_STEP_RETRY_DELAY"
DEFAULT_RETRIES, DEFAULT_DELAY_SECONDS = 3, 30.0
IDEMPOTENT_MODES = frozenset({"overwrite", "upsert"})


def network_retry_policy() -> dg.RetryPolicy | None:
    """The policy of a step that talks to another system (None when ``ETL_PLATFORM_STEP_RETRIES`` is 0)."""
    retries = int(number_from_env(RETRIES_ENV, DEFAULT_RETRIES, int))
    if retries == 0:
        return None
    return dg.RetryPolicy(max_retries=retries, delay=number_from_env(DELAY_ENV, DEFAULT_DELAY_SECONDS),
                          backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def write_retry_policy(mode: str) -> dg.RetryPolicy | None:
    """The policy of a step that writes with ``mode``: retried only when writing again gives the same result."""
    return network_retry_policy() if mode in IDEMPOTENT_MODES else None


def retryable(error: BaseException) -> bool:
    """A failure that may pass by itself: the system did not answer or dropped the connection (a missing bucket or
    container is a connection error too, but it will still be missing; refused credentials stay refused)."""
    return isinstance(error, ClientConnectionError) and not isinstance(error, (ConfigurationError,
                                                                               CredentialsRefusedError))


def step_failure(error: BaseException, metadata: Mapping | None = None) -> dg.Failure:
    """``error`` as the step's failure: retried by the step's policy only when ``retryable``."""
    return dg.Failure(description=str(error), metadata=dict(metadata or {}), allow_retries=retryable(error))
