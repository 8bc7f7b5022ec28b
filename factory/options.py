"""Small helpers shared by the typed configs: the error a bad value raises, and refusing unknown keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

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
