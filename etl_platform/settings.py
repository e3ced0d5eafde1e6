"""Where the platform keeps its files.

Every path the platform writes defaults to a folder below ``ETL_PLATFORM_HOME`` (``./.etl_platform``
when unset), so one environment variable moves a whole installation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from etl_platform.errors import ConfigurationError

HOME_ENV = "ETL_PLATFORM_HOME"
LANDING_ENV = "ETL_PLATFORM_LANDING"
WAREHOUSE_ENV = "ETL_PLATFORM_WAREHOUSE"
DEFAULT_HOME = ".etl_platform"


def platform_home() -> Path:
    """``$ETL_PLATFORM_HOME``, default ``./.etl_platform`` (relative to the working directory)."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def landing_root() -> Path:
    """The landing zone: ``$ETL_PLATFORM_LANDING``, default ``$ETL_PLATFORM_HOME/landing``."""
    explicit = os.environ.get(LANDING_ENV)
    return Path(explicit) if explicit else platform_home() / "landing"


def warehouse_path() -> Path:
    """The embedded warehouse file: ``$ETL_PLATFORM_WAREHOUSE``, default ``$ETL_PLATFORM_HOME/warehouse.duckdb``."""
    explicit = os.environ.get(WAREHOUSE_ENV)
    return Path(explicit) if explicit else platform_home() / "warehouse.duckdb"


def cache_folder() -> Path:
    """Where results derived from the project's own files are kept between processes (e.g. what the SQL says,
    medallion/lineage.py): ``$XDG_CACHE_HOME/etl_platform``, default ``~/.cache/etl_platform``. Safe to delete."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "etl_platform"


def sql_root() -> Path:
    """The folder holding the SQL files (``sql/`` in a checkout, ``etl_platform/sql`` in a wheel)."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "sql", package_dir.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"SQL folder not found: looked in {package_dir / 'sql'} and {package_dir.parent / 'sql'}"
    )


def number_from_env(name: str, default: float, kind: type = float,
                    error_class: type[Exception] = ConfigurationError) -> float:
    """``$name`` as a number >= 0 (``kind`` int or float), ``default`` when unset or blank; anything else is an
    ``error_class`` (``ConfigurationError``) naming the variable and its value."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if value < 0:
        raise error_class(f"${name} is {text!r}: expected a {'whole ' if kind is int else ''}number >= 0")
    return value


BAD_FILES_ENV = "ETL_PLATFORM_BAD_FILES"
BAD_FILE_POLICIES = ("block", "reject")


def bad_file_policy(value: str | None, field: str,
                    error_class: type[Exception] = ConfigurationError) -> Literal["block", "reject"]:
    """What to do with a file that cannot be read: ``value`` (the resource's ``bad_files``, named ``field`` in
    errors), else ``$ETL_PLATFORM_BAD_FILES``, else ``block``. The landing zone and file sources both ask here."""
    chosen = value or os.environ.get(BAD_FILES_ENV) or "block"
    if chosen not in BAD_FILE_POLICIES:
        raise error_class(f"{field if value else '$' + BAD_FILES_ENV}: {chosen!r} is not one of "
                          f"{', '.join(BAD_FILE_POLICIES)}")
    return chosen  # type: ignore[return-value]
