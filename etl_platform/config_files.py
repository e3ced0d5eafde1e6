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
               error_class: type[ConfigurationError] = ConfigurationError,
               substituted: dict[str, str] | None = None) -> Any:
    """``value`` with every ``${VAR}`` in its strings replaced from the environment. ``substituted`` (when given)
    collects ``{value: "${VAR}"}`` of what came from the environment, so a message can name the variable instead
    of showing its value (any of them may be a secret, whatever field it was put in)."""
    if isinstance(value, dict):
        return {key: expand_env(item, where, f"{path}.{key}" if path else str(key), error_class, substituted)
                for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, where, f"{path}[{index}]", error_class, substituted)
                for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            if substituted is not None and os.environ[name]:
                substituted[os.environ[name]] = f"${{{name}}}"
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


def name_variables(text: str, substituted: dict[str, str]) -> str:
    """``text`` with each value that came from the environment (in each of its spellings) replaced by the
    ``${VAR}`` it came from."""
    from etl_platform.secrets import forms

    spellings = {spelling: name for value, name in substituted.items() for spelling in forms(value)}
    for spelling in sorted(spellings, key=len, reverse=True):
        text = text.replace(spelling, spellings[spelling])
    return text
