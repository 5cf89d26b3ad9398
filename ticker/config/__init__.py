"""Settings: one TOML file (or the built-in default) validated into frozen objects.

`settings.py` holds the sections and the loader; `_table.py` is the TOML table reader they share.
"""

from __future__ import annotations

from ticker.config.settings import (
    CRYPTO_CURRENCIES,
    KNOWN_CURRENCIES,
    LAYOUTS,
    LOG_FORMATS,
    THEMES,
    VISITOR_LOCALES,
    CacheSettings,
    HistorySettings,
    MarketSettings,
    PollerSettings,
    ServerSettings,
    Settings,
    WidgetSettings,
    canonical_locale,
    default_settings,
    default_state_dir,
    is_known_currency,
    load_settings,
    unserved_currencies,
)
from ticker.providers.base import ProviderSettings

__all__ = [
    "CRYPTO_CURRENCIES",
    "KNOWN_CURRENCIES",
    "LAYOUTS",
    "LOG_FORMATS",
    "THEMES",
    "VISITOR_LOCALES",
    "CacheSettings",
    "HistorySettings",
    "MarketSettings",
    "PollerSettings",
    "ProviderSettings",
    "ServerSettings",
    "Settings",
    "WidgetSettings",
    "canonical_locale",
    "default_settings",
    "default_state_dir",
    "is_known_currency",
    "load_settings",
    "unserved_currencies",
]
