"""Typed configs at the edge: the error a bad value raises, unknown keys refused, and `build`, which makes a config
dataclass from a YAML mapping with every value checked against its field's annotation before the dataclass's own
range checks run. So `render.jpeg_quality: 50.5`, `plan.view_yaws: "abc"` or a string for a number are refused in
one line naming the key and the expected type, instead of failing later inside a worker.

    config = build(RenderConfig, {"image_size": 64}, "render")   # ConfigError: "render.image_size must be …"

Annotations understood: bool, int, float (an int is a number too), str, `X | None`, `tuple[T, ...]` and
`tuple[A, B]` (from YAML lists), Mapping / dict, and nested config dataclasses (from nested mappings; a class
with a `from_dict(data, where)` of its own, for a second YAML spelling of a field, is built through it).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import yaml

from factory.errors import FactoryError

EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


class ConfigError(FactoryError, ValueError):
    """A configuration value or key is wrong; the message names it."""


def reject_unknown_keys(config_class: type, data: Mapping, what: str) -> None:
    """ConfigError naming every key of `data` that is not a field of the dataclass `config_class`, and the known
    ones, so a typo in a YAML file or a flag is caught at the edge instead of silently ignored."""
    known = [f.name for f in fields(config_class)]
    unknown = sorted(set(map(str, data)) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")


def build(config_class: type, data, where: str = ""):
    """A `config_class` dataclass from a mapping: unknown keys refused by name, each value checked against its
    field's type, then the dataclass's own checks (their ValueError, as a ConfigError prefixed with `where`, the
    dotted section)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'the config'} must be a mapping of keys, got {shown(data)}")
    reject_unknown_keys(config_class, data, f"{where} key" if where else "config key")
    hints = typing.get_type_hints(config_class)
    values = {name: typed(hints[name], value, f"{where}.{name}" if where else name) for name, value in data.items()}
    try:
        return config_class(**values)
    except ValueError as error:  # ConfigError included: a dataclass's range check, by whichever name it raises
        raise ConfigError(f"{where}: {error}" if where else str(error)) from None


def typed(hint, value, name: str, nullable: bool = False):
    """`value` as the type `hint` asks for (ints are numbers too, lists become tuples), or a ConfigError naming
    `name` and the expected type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # only `X | None` occurs in the configs
        (inner,) = [arg for arg in args if arg is not type(None)]
        return None if value is None else typed(inner, value, name, nullable=True)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if value is None:  # an empty section (`plan:` alone): every default
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping of keys{' (or null)' if nullable else ''}, got {shown(value)}")
        return hint.from_dict(value, name) if "from_dict" in vars(hint) else build(hint, value, name)
    if origin is tuple:
        return typed_tuple(args, value, name)
    if hint in (dict, Mapping) or origin in (dict, Mapping):
        if isinstance(value, Mapping):
            return value
        raise ConfigError(f"{name} must be a mapping, got {shown(value)}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {shown(value)}")
        return float(value)
    if hint in EXPECTED and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    if hint not in EXPECTED:
        raise TypeError(f"{name}: no check for the annotation {hint!r}; teach factory.options.typed about it")
    expected = EXPECTED[hint] + (" (or null)" if nullable else "")
    raise ConfigError(f"{name} must be {expected}, got {shown(value)}{yaml_number_hint(hint, value)}")


def typed_tuple(args: tuple, value, name: str) -> tuple:
    """`tuple[T, ...]` (any length) or `tuple[A, B]` (exactly these) from a YAML list."""
    variadic = len(args) == 2 and args[1] is Ellipsis
    if not isinstance(value, (list, tuple)) or (not variadic and len(value) != len(args)):
        expected = "a list" if variadic else f"a list of {len(args)} values"
        raise ConfigError(f"{name} must be {expected}, got {shown(value)}")
    item_types = [args[0]] * len(value) if variadic else list(args)
    return tuple(typed(item_type, item, f"{name}[{index}]") for index, (item_type, item) in enumerate(zip(item_types, value)))


def shown(value, limit: int = 60) -> str:
    """repr of a value, cut short: a config error stays one readable line whatever the input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def yaml_number_hint(hint, value) -> str:
    """YAML 1.1 reads 1e-4 (no dot) as text; say so instead of leaving the user puzzled."""
    if hint is float and isinstance(value, str) and re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value.strip()):
        return f" (YAML reads {value} as text: write it with a dot, e.g. 1.0e-4)"
    return ""


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
