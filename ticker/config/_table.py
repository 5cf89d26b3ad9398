"""Table: reading one TOML table with its dotted path, for error messages that name the key.

Every value is type-checked as it is taken, and keys nobody took are an error (`finish`), so a typo in
a config file fails at start instead of being silently ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

from ticker.exceptions import ConfigError

T = TypeVar("T")


class Table:
    """Reads one TOML table, checking types, and rejects keys nobody read."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a table, got {describe(data)}")
        self.data = dict(data)
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(self, name: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(f"{self.key(name)}: expected {kind_name(kind)}, got {describe(value)}")
        if not isinstance(value, kind):
            raise ConfigError(f"{self.key(name)}: expected {kind_name(kind)}, got {describe(value)}")
        return value  # type: ignore[return-value]

    def take_number(self, name: str, default: float, *, minimum: float, exclusive: bool = False) -> float:
        value = self.take(name, float, default)
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            bound = f"greater than {minimum:g}" if exclusive else f"at least {minimum:g}"
            raise ConfigError(f"{self.key(name)}: expected a number {bound}, got {value!r}")
        return value

    def take_choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.take(name, str, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def take_strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.take(name, list, list(default))
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise ConfigError(f"{self.key(name)}[{index}]: expected a non-empty string, got {describe(item)}")
        return tuple(value)

    def finish(self) -> None:
        for name in self.data:
            raise ConfigError(f"{self.key(name)}: unknown key")


def kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    names[dict] = "a table"
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40] + "…")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)
