"""Small helpers shared by the typed configs: the error a bad value raises, and refusing unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import yaml

from factory.errors import FactoryError


class ConfigError(FactoryError, ValueError):
    """A configuration value or key is wrong; the message names it."""


def reject_unknown_keys(config_class: type, data: Mapping, what: str) -> None:
    """ConfigError naming every key of `data` that is not a field of the dataclass `config_class`, and the known
    ones, so a typo in a YAML file or a flag is caught at the edge instead of silently ignored."""
    known = [f.name for f in fields(config_class)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what}(s) {', '.join(map(str, unknown))}; known: {', '.join(known)}")


def read_yaml(path: Path) -> dict:
    """The mapping a YAML config file holds ({} for an empty file); ConfigError, in one line, for anything else."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(error).split())}") from None  # one line
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data
