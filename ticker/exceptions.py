"""Errors raised by ticker.

- TickerError: the base; catch it to handle anything ticker raises on purpose.
    - ConfigError: the config file (or a command-line value) is unusable; each of
      its `errors` starts with the key's dotted path and fits on one line.
    - ProviderError: an upstream price API failed; nothing else leaves a provider.
    - QueryError: a visitor's query names something not configured; the message
      says what is allowed and is safe to show.
    - HistoryError: the history store cannot be opened or written (a damaged or
      foreign file, a newer schema, a full disk); the message names the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class TickerError(Exception):
    """Base of every error ticker raises on purpose."""


class ConfigError(TickerError):
    """Config problems, one line each naming the key: every error found in a file, not only the first."""

    def __init__(self, *errors: str) -> None:
        super().__init__("\n".join(errors))
        self.errors: tuple[str, ...] = errors


class ProviderError(TickerError):
    """An upstream failure, translated at the provider boundary.

    `retry_after` carries the provider's own back-off request (seconds), when
    it sent one, so the poller can honour it. `over_budget` means no request
    was sent at all: our own request budget was spent, upstream is not at fault.
    `code` is the upstream's numeric error code, where its error body has one.
    `held` means no request was sent because the provider is held (Retry-After,
    block or backoff): nothing new happened upstream.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        over_budget: bool = False,
        code: int | None = None,
        held: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.over_budget = over_budget
        self.code = code  # the upstream's own error code from the body, e.g. Binance's -1121
        self.held = held

    def __str__(self) -> str:
        return f"{self.provider}: {self.message}"


@dataclass(frozen=True)
class Plural:
    """A message whose words follow a number: both English forms and the number that picks one."""

    singular: str
    plural: str
    n: int

    def english(self) -> str:
        return self.singular if self.n == 1 else self.plural


class Translations(Protocol):
    """What translating a message needs (gettext.NullTranslations and render.i18n.Language have it)."""

    def gettext(self, message: str, /) -> str: ...
    def ngettext(self, singular: str, plural: str, n: int, /) -> str: ...


class HistoryError(TickerError):
    """The history store failed: opening (damaged, foreign or newer file) or reading and writing it."""


class QueryError(TickerError):
    """A bad visitor query; the message is plain text meant for the visitor.

    Made by `QueryError.of(template, **params)`, it keeps the English `template` (a catalog msgid with
    %(name)s placeholders, or a `Plural` of two) and its `params`, so an HTML error page can show it in
    the visitor's language.
    """

    def __init__(self, message: str, template: str | Plural | None = None, params: Mapping[str, object] | None = None):
        super().__init__(message)
        self.template = template
        self.params: Mapping[str, object] = params or {}

    @classmethod
    def of(cls, template: str | Plural, **params: object) -> QueryError:
        english = template.english() if isinstance(template, Plural) else template
        return cls(english % params, template, params)

    def translated(self, translations: Translations) -> str:
        """The message in a catalog's language; the English text when it has no template."""
        if self.template is None:
            return str(self)
        if isinstance(self.template, Plural):
            return translations.ngettext(self.template.singular, self.template.plural, self.template.n) % self.params
        return translations.gettext(self.template) % self.params
