"""Custom readers and writers for YAML jobs (seed 003): ``custom_reader: "path/file.py:Class"``.

    from etl_platform.plugins import BaseReader, BaseWriter

    class JSONAPIReader(BaseReader):
        def extract(self, state_manager=None):
            ...                      # yield batches: lists of dicts or pyarrow Tables / RecordBatches

    class AvroWriter(BaseWriter):
        def write_batch(self, records, file_counter):
            ...                      # write; return [{"path": ..., "size_bytes": ..., "record_count": ...}]
        def commit_files(self, file_metadata):
            ...                      # optional, called once after every batch was written

A reader gets ``source_config``, a ``SourceConfig`` (``.connection``, ``.credentials``, ``.objects``,
``.tables``, ``.query``, ``.engine``, ``.incremental``, ``.get(key)``; a unit test builds one as
``SourceConfig(type="custom", connection={...}, objects=["users"])``); a writer gets ``asset_definition``
(``.name``, ``.schema`` — a list of ``{"name", "type", ...}`` —, ``.owner``, ``.description``), ``target_config``,
a ``TargetConfig`` (``.connection``, ``.format``, ``.mode``, ...) and ``output_base`` (where its files go). Paths
are relative to the job file, and a plugin is loaded from the job file's folder (or below) only; when set,
``ETL_PLATFORM_PLUGIN_PATHS`` (folders separated by ``:``) names the folders instead. ``etl-platform validate``
never imports a plugin: it reads the file (the class, its base) without running it.
"""

from __future__ import annotations

import importlib.util
import hashlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from etl_platform.errors import ConfigurationError, EtlPlatformError

PLUGIN_PATHS_ENV = "ETL_PLATFORM_PLUGIN_PATHS"

__all__ = ["BaseReader", "BaseWriter", "Section", "SourceConfig", "TargetConfig", "IncrementalStateManager",
           "PluginError", "load_plugin", "check_plugin_source"]

# The keys of a job's ``source`` and ``target`` sections (docs/jobs.md), and of the configs plugins receive.
SOURCE_KEYS = frozenset({"connection", "credentials", "objects", "tables", "query", "incremental", "engine",
                         "custom_reader"})
TARGET_KEYS = frozenset({"connection", "credentials", "format", "compression", "partitioning", "partition_by", "mode",
                         "id_columns", "modification_column", "upsert_method", "path", "custom_writer", "engine"})


class PluginError(EtlPlatformError):
    """A plugin could not be loaded, or raised while it ran (its own traceback is the cause)."""


class Section(Mapping):
    """A part of a job file (``source``, ``target``, the asset) with attribute access: ``config.connection``
    is ``config["connection"]`` (an empty mapping when absent, None for a missing scalar)."""

    MAPPINGS = frozenset({"connection", "credentials", "engine", "incremental", "options"})

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._values:
            return self._values[name]
        return {} if name in self.MAPPINGS else None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # credentials never shown
        shown = {k: ("***" if k == "credentials" else v) for k, v in self._values.items()}
        return f"Section({shown})"


class _Config(Section):
    """A job's ``source`` or ``target`` as a plugin receives it, also built by hand as the seed's unit tests do:
    ``SourceConfig(type="custom", connection={...}, credentials={...}, objects=["users"], engine={...})``.
    ``type`` is the connector (``custom`` for a plugin). Unknown keys and wrong shapes are refused, naming them."""

    KEYS: frozenset = frozenset()
    LISTS = frozenset({"objects", "tables", "partitioning", "partition_by", "id_columns"})

    def __init__(self, values: Mapping[str, Any] | None = None, /, **settings: Any):
        merged = {**(values or {}), **settings}
        kind = type(self).__name__
        unknown = sorted(set(merged) - self.KEYS - {"type"})
        if unknown:
            raise ConfigurationError(f"{kind}: unknown key(s) {unknown}; allowed: type, {', '.join(sorted(self.KEYS))}")
        for key, value in merged.items():
            if key in self.MAPPINGS and value is not None and not isinstance(value, Mapping):
                raise ConfigurationError(f"{kind}: {key} must be a mapping, not {type(value).__name__}")
            if key in self.LISTS and value is not None and not isinstance(value, list):
                raise ConfigurationError(f"{kind}: {key} must be a list, not {type(value).__name__}")
        if "type" in merged and not isinstance(merged["type"], str):
            raise ConfigurationError(f"{kind}: type must be a connector name like 'custom', not {merged['type']!r}")
        super().__init__(merged)

    def __repr__(self) -> str:  # credentials never shown
        return super().__repr__().replace("Section(", f"{type(self).__name__}(", 1)


class SourceConfig(_Config):
    """What a custom reader gets as ``source_config``: ``.connection``, ``.credentials``, ``.objects``, ``.tables``,
    ``.query``, ``.engine``, ``.incremental`` (``.type``: the connector)."""

    KEYS = SOURCE_KEYS


class TargetConfig(_Config):
    """What a custom writer gets as ``target_config``: ``.connection``, ``.format``, ``.mode``, ``.id_columns``, ...
    (``.type``: the connector)."""

    KEYS = TARGET_KEYS


class IncrementalStateManager:
    """The state of one job object between runs: ``get(key)``, ``set(key, value)``. It is saved by the runner
    only after the target committed the run's data, so a failed run starts again from the same place."""

    def __init__(self, state: dict[str, Any] | None = None):
        self.state: dict[str, Any] = dict(state or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.state[key] = value

    def get_state(self) -> dict[str, Any]:
        return dict(self.state)


class BaseReader:
    """A custom reader: ``extract(state_manager)`` yields batches (lists of dicts or Arrow tables/batches)."""

    def __init__(self, source_config: Section):
        self.source_config = source_config

    def extract(self, state_manager: IncrementalStateManager | None = None) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement extract(state_manager)")

    def get_total_records_estimate(self) -> int | None:
        """How many records ``extract`` will yield, if known (shown as progress)."""
        return None


class BaseWriter:
    """A custom writer: ``write_batch(records, file_counter)`` per batch (records: a list of dicts that passed
    the asset's schema), then ``commit_files(file_metadata)`` once."""

    def __init__(self, asset_definition: Section, target_config: Section, output_base: str):
        self.asset_definition = asset_definition
        self.target_config = target_config
        self.output_base = output_base

    def write_batch(self, records: list[dict[str, Any]], file_counter: int) -> list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} must implement write_batch(records, file_counter)")

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        return {"status": "success", "files_added": len(file_metadata),
                "total_records": sum(m.get("record_count", 0) for m in file_metadata)}


def plugin_location(spec: str, relative_to: Path, where: str) -> tuple[Path, str]:
    """``(file, class name)`` of ``path/file.py:Class`` (relative to the job's folder ``relative_to``), once the file
    is known to be inside the plugin folders: those of ``ETL_PLATFORM_PLUGIN_PATHS`` when it is set, else the job
    file's own folder (and below). A file elsewhere is refused naming it: a job file must not make the platform
    run code from anywhere it likes."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not spec.split(":")[1]:
        raise ConfigurationError(f"{where}: {spec!r} must be 'path/to/file.py:ClassName'")
    file_part, class_name = spec.rsplit(":", 1)
    path = Path(file_part)
    if not path.is_absolute():
        path = relative_to / path
    path = path.resolve()
    configured = [Path(p).resolve() for p in os.environ.get(PLUGIN_PATHS_ENV, "").split(":") if p]
    allowed = configured or [relative_to.resolve()]
    if not any(path.is_relative_to(folder) for folder in allowed):
        if configured:
            raise ConfigurationError(f"{where}: {path} is outside the plugin folders of {PLUGIN_PATHS_ENV} "
                                     f"({', '.join(map(str, allowed))})")
        raise ConfigurationError(f"{where}: {path} is outside the job file's folder {allowed[0]}; plugins are "
                                 f"loaded from there, or from the folders {PLUGIN_PATHS_ENV} names")
    if path.suffix != ".py" or not path.is_file():
        raise ConfigurationError(f"{where}: plugin module not found: {path}")
    return path, class_name


def _plugin_classes(spec: str, relative_to: Path, where: str) -> tuple[Path, str, dict]:
    """The plugin's file, class name and the classes its file defines (parsed, never run)."""
    import ast

    path, class_name = plugin_location(spec, relative_to, where)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as error:
        raise ConfigurationError(f"{where}: {path} is not valid Python: {error}") from None
    return path, class_name, {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def plugin_keeps_state(spec: str, relative_to: Path, where: str) -> bool:
    """Whether a reader plugin keeps incremental state (its class, or a base in its file, calls
    ``state_manager.set``): read from its source, never run."""
    import ast

    _, class_name, classes = _plugin_classes(spec, relative_to, where)
    pending, seen = [class_name], set()
    while pending:
        node = classes.get(pending.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        for item in ast.walk(node):
            if isinstance(item, ast.Attribute) and item.attr == "set" and \
                    isinstance(item.value, ast.Name) and item.value.id == "state_manager":
                return True
        pending += [getattr(parent, "id", None) for parent in node.bases]
    return False


def check_plugin_source(spec: str, base: type, relative_to: Path, where: str) -> None:
    """What ``validate`` checks of a plugin without running any of its code: the file is in a plugin folder, it
    parses, it defines the class, and the class derives (by name, through the file's own classes) from ``base``."""
    import ast

    path, class_name, classes = _plugin_classes(spec, relative_to, where)

    def derives(name: str, seen: frozenset = frozenset()) -> bool:
        node = classes.get(name)
        if node is None or name in seen:
            return False
        for parent in node.bases:
            parent_name = parent.attr if isinstance(parent, ast.Attribute) else getattr(parent, "id", None)
            if parent_name == base.__name__ or derives(parent_name, seen | {name}):
                return True
        return False

    if class_name not in classes:
        found = sorted(n for n in classes if derives(n))
        raise ConfigurationError(f"{where}: class {class_name!r} not found in {path}"
                                 + (f"; it defines {', '.join(found)}" if found else ""))
    if not derives(class_name):
        raise ConfigurationError(f"{where}: {class_name} in {path} does not derive from "
                                 f"etl_platform.plugins.{base.__name__}")


def load_plugin(spec: str, base: type, relative_to: Path, where: str) -> type:
    """The class named by ``path/file.py:Class`` (relative to ``relative_to``), imported (its module's code runs:
    ``run`` only, never ``validate``), checked to derive from ``base``.

    ``where`` names the job setting (``job.yaml: source.custom_reader``) in every error."""
    path, class_name = plugin_location(spec, relative_to, where)
    name = f"etl_platform_plugin_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    module = sys.modules.get(name)
    if module is None:
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            raise PluginError(f"{where}: importing {path} failed: {type(error).__name__}: {error}") from error
        sys.modules[name] = module
    plugin = getattr(module, class_name, None)
    if plugin is None:
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, base) and v is not base)
        raise ConfigurationError(f"{where}: class {class_name!r} not found in {path}"
                                 + (f"; it defines {', '.join(found)}" if found else ""))
    if not isinstance(plugin, type) or not issubclass(plugin, base):
        raise ConfigurationError(f"{where}: {class_name} in {path} does not derive from "
                                 f"etl_platform.plugins.{base.__name__}")
    return plugin
