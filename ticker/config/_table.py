"""Table: reading one TOML table with its dotted path, for error messages that name the key.

Every value is type-checked as it is taken, and keys nobody took are an error (`finish`), so a typo in
a config file fails at start instead of being silently ignored. A bad value does not stop the reading:
its problem goes to the `Problems` all tables of one file share, the default stands in for it, and the
rest of the file is still checked, so that an operator sees every error at once (`Problems.check`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from ticker.exceptions import ConfigError

T = TypeVar("T")


class Problems:
    """Every error found in one config file, one line each, in the order found."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, message: str) -> None:
        self.errors.append(message)

    def under(self, path: str) -> bool:
        """Whether an error was found at `path` or inside it (`poller.providers[1]` is inside `poller.providers`)."""
        return any(e.startswith((f"{path}:", f"{path}[", f"{path}.")) for e in self.errors)

    def check(self) -> None:
        """Raise one ConfigError carrying every error found, if any."""
        if self.errors:
            raise ConfigError(*self.errors)


class Table:
    """Reads one TOML table, checking types, and reports keys nobody read (with the closest known key)."""

    def __init__(self, data: Any, path: str, problems: Problems | None = None) -> None:
        self.problems = problems if problems is not None else Problems()
        self.path = path
        self.ok = isinstance(data, dict)  # False: not a table (reported); read as an empty one
        if not self.ok:
            self.problems.add(f"{path}: expected a table, got {describe(data)}")
        self.data: dict[str, Any] = dict(data) if self.ok else {}
        self._known: list[str] = []  # every key asked for, present or not: the candidates for "did you mean"

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, problem: str) -> None:
        """Report a problem with the key `name` of this table."""
        self.problems.add(f"{self.key(name)}: {problem}")

    def present(self, name: str) -> bool:
        """Whether the key is set; `name` counts as a known key either way."""
        self._known.append(name)
        return name in self.data

    def table(self, name: str) -> Table:
        """The sub-table `name` (empty when absent), sharing this file's problems."""
        return Table(self.take(name, dict, {}), self.key(name), self.problems)

    def take(self, name: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        """The value of `name` if it has the right type; `default` when absent or (reported) of another type."""
        if not self.present(name):
            return default
        value = self.data.pop(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            self.fail(name, f"expected {kind_name(kind)}, got {describe(value)}")
            return default
        return value  # type: ignore[return-value]

    def take_number(self, name: str, default: float, *, minimum: float, exclusive: bool = False) -> float:
        found = len(self.problems.errors)
        value = self.take(name, float, default)
        if len(self.problems.errors) > found:
            return default  # not a number: reported
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            bound = f"greater than {minimum:g}" if exclusive else f"at least {minimum:g}"
            self.fail(name, f"expected a number {bound}, got {value!r}")
            return default
        return value

    def take_choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.take(name, str, default)
        if value not in choices:
            self.fail(name, f"expected one of {', '.join(choices)}, got {value!r}{did_you_mean(value, choices)}")
            return default
        return value

    def take_text(self, name: str, default: str = "", *, blank: str | None = None) -> str:
        """A string, stripped; `blank`: the problem to report when it is empty (None: empty is fine)."""
        if not self.present(name):
            return default
        raw = self.data[name]
        value = self.take(name, str, default).strip()
        if not value and blank is not None and isinstance(raw, str):
            self.fail(name, blank)
        return value

    def take_strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A list of non-empty strings; bad items are reported and left out."""
        value = self.take(name, list, list(default))
        good: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.problems.add(f"{self.key(name)}[{index}]: expected a non-empty string, got {describe(item)}")
            else:
                good.append(item)
        return tuple(good)

    def finish(self) -> None:
        """Report every key nobody took, with the closest known key of this table."""
        for name in self.data:
            self.fail(name, "unknown key" + did_you_mean(name, self._known, key=self.key("")))
        self.data.clear()


def did_you_mean(value: str, choices: Iterable[str], *, key: str | None = None) -> str:
    """`; did you mean 'x'?` for the closest of `choices` (difflib's ratio of at least 0.6), else ''.

    `key`: the choices are keys of the table at this dotted path (`market.`): named by their path, unquoted.
    """
    close = difflib.get_close_matches(value, list(choices), n=1)
    if not close:
        return ""
    return f"; did you mean {key}{close[0]}?" if key is not None else f"; did you mean {close[0]!r}?"


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
