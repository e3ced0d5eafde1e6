"""Configuration files (YAML or JSON) with ``${VAR}`` taken from the environment.

A ``${VAR}`` whose variable is not set is an error naming the variable and the file; ``${VAR:-default}``
falls back to the default. Values are substituted after parsing, so a secret never passes through the YAML
parser's error messages.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from etl_platform.errors import ConfigurationError

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, where: str = "configuration", path: str = "",
               error_class: type[ConfigurationError] = ConfigurationError) -> Any:
    """``value`` with every ``${VAR}`` in its strings replaced from the environment."""
    if isinstance(value, dict):
        return {key: expand_env(item, where, f"{path}.{key}" if path else str(key), error_class)
                for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, where, f"{path}[{index}]", error_class) for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise error_class(f"{where}: {path or 'value'} uses ${{{name}}}, but the environment variable "
                                 f"{name} is not set")

    return VARIABLE.sub(substitute, value)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping from ``path``, with ``${VAR}`` expanded."""
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"configuration file {file} does not exist")
    text = file.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigurationError(f"{file}: not valid {'JSON' if file.suffix.lower() == '.json' else 'YAML'}: "
                                 f"{str(error).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{file}: expected a mapping at the top, found {type(document).__name__}")
    return expand_env(document, str(file))
