"""Which language a visitor reads: gettext catalogs under ticker/locale, matched to the requested locale.

Catalogs are the `.po` files in `ticker/locale/<lang>/LC_MESSAGES/messages.po`, compiled in memory with
Babel (`pofile.read_po` then `mofile.write_mo`) the first time a language is used: no build step, so a
fresh clone runs and a wheel needs only the `.po` files. The pseudo-locale (`PSEUDO_LOCALE`) is made by
code from `messages.pot`: every letter accented and every message lengthened, so a test can see any
text that bypasses the catalog.

A locale resolves to the most specific catalog there is (`pt_BR` -> pt_BR, `ur_PK` -> ur, `en_PK` ->
English text); numbers and dates always follow the locale itself. Without a catalog the text is English
and the page says `lang="en"`, so a screen reader never reads English words with another voice.
"""

from __future__ import annotations

import gettext
import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
from babel import Locale
from babel.core import get_global
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from ticker.config.settings import PSEUDO_LOCALE

logger = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).parent.parent / "locale"
DOMAIN = "messages"
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})
SOURCE_LANGUAGE = "en"


@dataclass(frozen=True)
class Language:
    """What a page in one locale shows: `tag` for `<html lang>` (BCP 47, "pt-BR"), `dir` ("ltr"/"rtl"),
    the gettext `translations`, and `numbers`, the Babel locale for numbers and dates ("en_PK")."""

    tag: str
    dir: str
    translations: gettext.NullTranslations
    numbers: str

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        return self.translations.pgettext(context, message)


def available() -> frozenset[str]:
    """Catalog names that ship ("de", "pt_BR"), English (the source language) included."""
    found = {path.parent.parent.name for path in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return frozenset(found | {SOURCE_LANGUAGE})


def catalog_for(locale: str) -> str:
    """The catalog a locale reads, else English: the most specific of language_Script_TERRITORY,
    language_TERRITORY and language_Script, then CLDR's parent locales (`pt_AO` -> pt_PT), then the
    language, then the language's likely region when the script agrees (`pt` -> pt_BR, `zh_SG` -> zh_Hans,
    never `zh_Hant_TW` -> zh_Hans)."""
    if locale == PSEUDO_LOCALE:
        return PSEUDO_LOCALE
    try:
        parsed = Locale.parse(locale)
    except (ValueError, TypeError, LookupError):
        return SOURCE_LANGUAGE
    names = available()
    candidates = [*_spellings(parsed.language, parsed.script, parsed.territory)]
    parents: Mapping[str, str] = get_global("parent_exceptions")
    parent = parents.get(candidates[0]) or parents.get(candidates[1])
    while parent is not None and parent not in candidates:
        candidates.append(parent)
        parent = parents.get(parent)
    candidates.append(parsed.language)
    likely = get_global("likely_subtags").get(parsed.language)
    if likely is not None:
        region = Locale.parse(likely)
        if parsed.script in (None, region.script):
            candidates += _spellings(region.language, region.script, region.territory)
    return next((name for name in candidates if name in names), SOURCE_LANGUAGE)


def _spellings(language: str, script: str | None, territory: str | None) -> list[str]:
    """Catalog names for a locale, most specific first: language_Script_TERRITORY, language_TERRITORY,
    language_Script (absent parts left out)."""
    return [
        "_".join(filter(None, (language, script, territory))),
        "_".join(filter(None, (language, territory))),
        "_".join(filter(None, (language, script))),
    ]


@lru_cache(maxsize=64)
def language(locale: str) -> Language:
    """The language shown for a (Babel-spelled, allow-listed) locale; cached, one per locale."""
    name = catalog_for(locale)
    numbers = SOURCE_LANGUAGE if locale == PSEUDO_LOCALE else locale
    tag = "en-XA" if name == PSEUDO_LOCALE else name.replace("_", "-")
    direction = "rtl" if name.split("_")[0] in RTL_LANGUAGES else "ltr"
    return Language(tag, direction, translations(name), numbers)


@lru_cache(maxsize=32)
def translations(name: str) -> gettext.NullTranslations:
    """gettext translations for a catalog name; English (the msgids themselves) for "en"."""
    if name == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    if name == PSEUDO_LOCALE:
        return compile_catalog(pseudo_catalog())
    with (LOCALE_DIR / name / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as file:
        return compile_catalog(read_po(file, locale=name))


def compile_catalog(catalog: Catalog) -> gettext.GNUTranslations:
    """A catalog compiled to .mo in memory and loaded as gettext translations (fuzzy entries left out)."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def template() -> Catalog:
    """messages.pot, the extracted source strings."""
    with (LOCALE_DIR / f"{DOMAIN}.pot").open("rb") as file:
        return read_po(file)


_ACCENTED = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "àƀçđéƒĝĥîĵķľɱñöþǫŕšţûṽŵẋýžÀƁÇĐÉƑĜĤÎĴĶĽṀÑÖÞǪŔŠŢÛṼŴẊÝŽ",
)
# Placeholders (%(name)s, %%) and markup stay as they are: only the words around them change.
_KEEP = re.compile(r"%\([a-z_]+\)[sd]|%%|<[^>]*>|&[a-z]+;")


def pseudo(text: str) -> str:
    """ "Updated %(time)s" -> "[Ûþđàţéđ %(time)s ~~~]": accented letters, about a third longer, bracketed,
    so an English word, a truncated text or a concatenation shows at a glance."""
    if not text.strip():
        return text
    parts: list[str] = []
    last = 0
    for match in _KEEP.finditer(text):
        parts.append(text[last : match.start()].translate(_ACCENTED))
        parts.append(match.group(0))
        last = match.end()
    parts.append(text[last:].translate(_ACCENTED))
    padding = "~" * max(1, len(text) // 3)
    return f"[{''.join(parts)} {padding}]"


def pseudo_catalog() -> Catalog:
    """The pseudo-locale's catalog, every message of messages.pot translated by `pseudo`."""
    source = template()
    catalog = Catalog(locale="en", domain=DOMAIN)
    for message in source:
        if not message.id:
            continue
        if isinstance(message.id, tuple | list):
            catalog.add(message.id, tuple(pseudo(str(part)) for part in message.id), context=message.context)
        else:
            catalog.add(message.id, pseudo(message.id), context=message.context)
    return catalog


def templates(locale: str, folder: Path) -> jinja2.Environment:
    """The Jinja2 environment for the templates in `folder` whose `_`/`gettext`/`ngettext` speak this
    locale's catalog: one per catalog and folder, cached (the widget, the landing page and the chart share it)."""
    return _templates(catalog_for(locale), folder)


@lru_cache(maxsize=64)
def _templates(name: str, folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(name), newstyle=True)  # type: ignore[attr-defined]
    return env
