"""Translations: every catalog complete and in step with the source, every visible word through the catalog
(proved with the pseudo-locale), and each locale matched to the catalog whose language the page then claims."""

from __future__ import annotations

import html as html_lib
import re
import shutil
from datetime import timedelta

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import FULL_CONFIG, NOW, full_snapshot, quote, settings_from, snapshot_of
from ticker.config.settings import PSEUDO_LOCALE, VISITOR_LOCALES
from ticker.history.base import Tick
from ticker.history.memory import MemoryHistory
from ticker.models import ProviderStatus, Snapshot
from ticker.render import i18n
from ticker.render.i18n import LOCALE_DIR, catalog_for, language, pseudo
from ticker.web.query import COLUMNS

ROOT = LOCALE_DIR.parent.parent
CATALOGS = sorted(LOCALE_DIR.glob("*/LC_MESSAGES/messages.po"))


def message_ids(catalog) -> set[object]:
    return {(m.context, m.id) for m in catalog if m.id}


def test_the_template_holds_exactly_the_messages_in_the_source():
    """Re-extracting (the README's pybabel command, through Babel's API) gives messages.pot's messages:
    a text added or changed without `pybabel extract` fails here."""
    method_map = [
        ("ticker/render/**.py", "python"),
        ("ticker/web/**.py", "python"),
        ("ticker/render/templates/**.html", "jinja2"),
    ]
    options = {"ticker/render/templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None}
    found = {
        (context, message if isinstance(message, str) else tuple(message))
        for _file, _line, message, _comments, context in extract_from_dir(
            ROOT, method_map, options, keywords=keywords, comment_tags=("Translators:",)
        )
    }
    found = {(c, m[0] if isinstance(m, tuple) and len(m) == 1 else m) for c, m in found}
    with (LOCALE_DIR / "messages.pot").open("rb") as file:
        assert message_ids(read_po(file)) == found


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.parent.parent.name)
def test_every_catalog_is_complete_and_compiles(path):
    """No message missing, obsolete, fuzzy or untranslated; placeholders as in the English; it compiles; and
    its header says how it was made, for a native speaker's review."""
    with path.open("rb") as file:
        catalog = read_po(file, locale=path.parent.parent.name)
    template = i18n.template()
    assert message_ids(catalog) == message_ids(template)
    assert not catalog.obsolete
    assert not catalog.fuzzy and not [m.id for m in catalog if m.id and m.fuzzy]
    assert [m.id for m in catalog if m.id and not all(m.string if isinstance(m.string, tuple) else [m.string])] == []
    assert [(m.id, errors) for m, errors in catalog.check() if errors] == []  # python-format placeholders match
    assert "How this was made:" in catalog.header_comment
    translations = i18n.compile_catalog(catalog)
    assert all(translations.gettext(m.id) == m.string for m in catalog if m.id and isinstance(m.id, str))


def test_pseudo_translation_keeps_placeholders_and_markup_and_changes_every_word():
    text = "Updated %(time)s <code>%(base)s</code> 100%% done"
    out = pseudo(text)
    assert "%(time)s" in out and "<code>%(base)s</code>" in out and "%%" in out
    assert not re.search(r"[A-Za-z]{2,}", re.sub(r"%\(\w+\)s|<[^>]*>", "", out))
    assert len(out) > len(text)


# Words a page in the pseudo-locale may show in English: coin names and symbols, the brand, the data
# sources' names, query parameter names and values (they are code), and CLDR's own English data for `en`
# number and date formatting (currency names spoken to screen readers, month abbreviations, the chart's range
# lengths as CLDR units).
ALLOWED_WORDS = {
    *"Bitcoin Ethereum Pirate Chain OpenVoiceCoin Nano BTC ETH ARRR OPENVC XNO ZZZ".split(),
    *"ticker CoinGecko UTC US dollars euros Nov hours days year".split(),
    *"coins currency theme layout locale usd eur list compact zzz coin range max zz".split(),
    *"table columns ticker USD EUR hour".split(),  # query values; ISO codes as price headers; CLDR "1 hour"
}


def visible_words(page: str) -> set[str]:
    """English-looking words a reader can see or hear: text and title/aria-label/alt attributes, without
    scripts, styles and code samples."""
    page = re.sub(r"<(script|style|code|pre)\b.*?</\1>", " ", page, flags=re.S)
    attributes = re.findall(r'\b(?:title|aria-label|alt)="([^"]*)"', page)
    text = re.sub(r"<[^>]*>", " ", page)
    words = re.findall(r"[A-Za-z]{2,}", html_lib.unescape(" ".join([text, *attributes])))
    return set(words) - ALLOWED_WORDS


async def btc_history() -> MemoryHistory:
    """A week of BTC in usd and eur, for the chart pages."""
    history = MemoryHistory()
    await history.append(
        [Tick("BTC", c, NOW.timestamp() - 3600 * i, 90_000.0 + i) for i in range(170) for c in ("usd", "eur")]
    )
    return history


# Every column of the table, with two currencies.
TABLE = "layout=table&currency=usd,eur&columns=" + ",".join(COLUMNS)

# The chart pages each language test reads: a chart, one per kind of summary, too little history, a bad query.
CHART_PAGES = {"/widget/chart?coin=BTC&range=7d": 200, "/widget/chart?coin=btc&range=max&currency=eur": 200}
CHART_PAGES |= {"/widget/chart?coin=ETH&range=24h": 200, "/widget/chart?coin=BTC&range=zz": 400}


async def chart_errors(make_client, tmp_path, locale: str = "") -> dict[str, str]:
    """The chart's 404 (history off) and 503 (the store not open) pages, in `locale` (default: widget.locale)."""
    query = f"?locale={locale}" if locale else ""
    config = (tmp_path / "ticker.toml").read_text()
    (tmp_path / "off").mkdir(exist_ok=True)
    off = settings_from(tmp_path / "off", config + '[history]\npath = ""\n')
    unopened = settings_from(tmp_path, config)
    pages = {}
    for settings, status in ((off, 404), (unopened, 503)):
        response = await (await make_client(settings, full_snapshot())).get(f"/widget/chart{query}")
        assert response.status_code == status
        pages[f"/widget/chart {status}"] = response.text
    return pages


def unreachable_snapshot() -> Snapshot:
    """ETH stale while every provider fails, BTC from the demo source: the footer's other notes."""
    snap = snapshot_of(quote("BTC", 90917.04, source="demo"), quote("ETH", 3021.55, change=0.0001, age=400))
    since = NOW - timedelta(minutes=10)
    return Snapshot(NOW, snap.quotes, {"coingecko": ProviderStatus("failing", since, "timeout")})


async def test_pseudo_locale_leaves_no_english_word_on_any_page(make_client, tmp_path):
    settings = settings_from(tmp_path, FULL_CONFIG + f'[widget]\nlocale = "{PSEUDO_LOCALE}"\n')
    client = await make_client(settings, full_snapshot(), history=await btc_history())
    pages = {
        **{f"/widget?layout={layout}": 200 for layout in ("list", "compact", "ticker", "table")},
        "/widget?currency=eur&sparkline=1": 200,
        "/widget?" + TABLE: 200,
        "/widget?currency=eur,usd": 200,
        "/widget?layout=ticker&currency=usd,eur": 400,
        "/widget?currency=usd,eur,btc,eth": 400,
        "/widget/fragment": 200,
        "/": 200,
        "/widget?coins=ZZZ": 400,
        "/widget/fragment?layout=zzz": 400,
        **CHART_PAGES,
    }
    seen = {}
    for path, status in pages.items():
        response = await client.get(path)
        assert response.status_code == status, path
        seen[path] = response.text
        assert visible_words(response.text) == set(), path
    for path, text in (await chart_errors(make_client, tmp_path)).items():
        assert visible_words(text) == set(), path
    assert "[Ĥîĝĥ" in seen["/widget/chart?coin=BTC&range=7d"]  # the chart's words go through the catalog
    assert "Ŀ" not in seen["/"] and "ÀƁ" not in seen["/"]  # sanity: the accents are the pseudo map's own
    assert "[Ľàţéšţ Ṁàŕķéţ Þŕîçéš" in seen["/widget?layout=list"]  # the default title goes through the catalog
    for snapshot in (unreachable_snapshot(), None):
        page = (await (await make_client(settings, snapshot)).get("/widget")).text
        assert visible_words(page) == set()
        assert '<html lang="en-XA" dir="ltr"' in page


async def test_german_widget_speaks_german_with_german_numbers(make_client, tmp_path):
    settings = settings_from(tmp_path, FULL_CONFIG)
    client = await make_client(settings, full_snapshot())
    page = (await client.get("/widget?currency=eur&locale=de_DE")).text
    assert '<html lang="de" dir="ltr"' in page and "<title>Aktuelle Marktkurse</title>" in page
    assert "Bitcoin, 84.123,55 Euro, in 24 Stunden um 1,70 Prozent gestiegen" in page
    assert "Aktualisiert 18:19 UTC" in page and "Daten: <a" in page
    assert "Keine Quelle für diese Währung eingerichtet" in page  # OPENVC has no eur price
    error = await client.get("/widget?coins=ZZZ&locale=de_AT")
    assert error.status_code == 400 and '<html lang="de" dir="ltr">' in error.text
    assert "coins: unbekannte Münze &#39;ZZZ&#39;; erlaubt: BTC, ETH, ARRR, OPENVC, XNO" in error.text
    json_error = await client.get("/api/v1/prices?coins=ZZZ&locale=de_DE")  # the API stays English
    assert json_error.json()["error"].startswith("coins: unknown coin 'ZZZ'")
    old = snapshot_of(quote("BTC", 90917.04, age=2 * 86400 - 3600))
    stale = (await (await make_client(settings, old)).get("/widget?locale=de_DE&coins=BTC")).text
    assert "Stand 25. Nov. 19:20 UTC" in stale  # CLDR's German month and day order


async def test_a_locale_without_a_catalog_shows_english_marked_english_with_its_own_numbers(make_client, tmp_path):
    client = await make_client(settings_from(tmp_path, FULL_CONFIG), full_snapshot())
    for locale, price in (("en_PK", "US$90,917.04"), ("en_IN", ">$90,917.04"), ("sv_SE", "90\xa0917,04\xa0US$")):
        response = await client.get(f"/widget?coins=BTC&locale={locale}")
        assert response.status_code == 200, locale
        assert '<html lang="en" dir="ltr"' in response.text and "Latest Market Prices" in response.text, locale
        assert price in response.text, locale


# The contract's translated languages, by catalog name.
TRANSLATED = (*"en de fr es pt_BR pt_PT it nl pl ru uk tr ar fa he ur hi zh_Hans ja ko id vi".split(),)
RIGHT_TO_LEFT = {"ar", "fa", "he", "ur"}


def test_the_contracts_languages_ship():
    assert i18n.available() == set(TRANSLATED)


def words_of(text: str) -> set[str]:
    """The words of a message, without markup, code samples and placeholders."""
    return set(re.findall(r"[A-Za-z]{2,}", re.sub(r"<code>.*?</code>|<[^>]*>|%\(\w+\)[sd]", " ", text)))


def catalog_words(catalog) -> set[str]:
    texts = (text for message in catalog if message.id for text in _texts(message.string))
    return set().union(*(words_of(text) for text in texts))


def _texts(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


ENGLISH_UI_WORDS = {
    word for message in i18n.template() if message.id for text in _texts(message.id) for word in words_of(text)
}


@pytest.mark.parametrize("name", [name for name in TRANSLATED if name != "en"])
async def test_each_language_shows_no_english_ui_word_and_the_right_lang_and_dir(name, make_client, tmp_path):
    """Every page a visitor or operator can reach in that language: an English word of our messages shows
    only where the translation itself uses it (German "Pause")."""
    with (LOCALE_DIR / name / "LC_MESSAGES" / "messages.po").open("rb") as file:
        allowed = catalog_words(read_po(file, locale=name))
    settings = settings_from(tmp_path, FULL_CONFIG)
    tag, direction = name.replace("_", "-"), "rtl" if name.split("_")[0] in RIGHT_TO_LEFT else "ltr"
    pages = {
        **{f"/widget?layout={layout}&locale={name}": 200 for layout in ("list", "compact", "ticker", "table")},
        f"/widget?currency=eur&sparkline=1&locale={name}": 200,
        f"/widget?{TABLE}&locale={name}": 200,
        f"/widget?currency=eur,usd&locale={name}": 200,
        f"/widget?layout=ticker&currency=usd,eur&locale={name}": 400,
        f"/widget?currency=usd,eur,btc,eth&locale={name}": 400,
        f"/widget/fragment?locale={name}": 200,
        f"/?locale={name}": 200,
        f"/widget?coins=ZZZ&locale={name}": 400,
        f"/widget?layout=zzz&locale={name}": 400,
    }
    pages |= {f"{path}&locale={name}": status for path, status in CHART_PAGES.items()}
    client = await make_client(settings, full_snapshot(), history=await btc_history())
    seen = {}
    for path, status in pages.items():
        response = await client.get(path)
        assert response.status_code == status, path
        seen[path] = response.text
    seen |= await chart_errors(make_client, tmp_path, name)
    for path, text in seen.items():
        assert (visible_words(text) & ENGLISH_UI_WORDS) - allowed == set(), path
        if "fragment" not in path:
            assert f'<html lang="{tag}" dir="{direction}"' in text, path
    for snapshot in (unreachable_snapshot(), None):
        page = (await (await make_client(settings, snapshot)).get(f"/widget?locale={name}")).text
        assert (visible_words(page) & ENGLISH_UI_WORDS) - allowed == set()


@pytest.fixture
def catalogs(tmp_path, monkeypatch):
    """A locale folder with the given catalogs (copies of the German one), and the caches emptied."""

    def make(*names: str):
        for name in names:
            folder = tmp_path / name / "LC_MESSAGES"
            folder.mkdir(parents=True)
            shutil.copy(LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po", folder / "messages.po")
        monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
        language.cache_clear()
        i18n.translations.cache_clear()
        i18n._templates.cache_clear()

    yield make
    language.cache_clear()
    i18n.translations.cache_clear()
    i18n._templates.cache_clear()


def test_locales_resolve_to_the_most_specific_catalog(catalogs):
    catalogs("pt", "pt_BR", "ur", "zh_Hans", "ar")
    expected = {
        "ur_PK": "ur",
        "ur": "ur",
        "pt_BR": "pt_BR",
        "pt_PT": "pt",
        "pt": "pt",
        "en_PK": "en",
        "zh_Hans_CN": "zh_Hans",
        "zh": "zh_Hans",
        "zh_Hant_TW": "en",
        "fr_FR": "en",
        "ar_EG": "ar",
    }
    assert {locale: catalog_for(locale) for locale in expected} == expected
    assert (language("ur_PK").tag, language("ur_PK").dir, language("ur_PK").numbers) == ("ur", "rtl", "ur_PK")
    assert (language("pt_BR").tag, language("pt_BR").dir) == ("pt-BR", "ltr")
    assert (language("en_PK").tag, language("en_PK").dir, language("en_PK").numbers) == ("en", "ltr", "en_PK")


def test_portuguese_and_chinese_follow_cldr_parents_and_likely_regions(catalogs):
    """As shipped (pt_BR and pt_PT, no plain pt): CLDR's parent locales and likely subtags pick the variant."""
    catalogs("pt_BR", "pt_PT", "zh_Hans")
    expected = {
        "pt": "pt_BR",  # CLDR: pt is Brazilian Portuguese
        "pt_BR": "pt_BR",
        "pt_PT": "pt_PT",
        "pt_AO": "pt_PT",  # CLDR parent locale
        "pt_MZ": "pt_PT",
        "zh": "zh_Hans",
        "zh_Hans_SG": "zh_Hans",
        "zh_Hant": "en",  # traditional characters are not simplified ones
        "zh_Hant_HK": "en",
    }
    assert {locale: catalog_for(locale) for locale in expected} == expected


async def test_right_to_left_languages_say_so(catalogs, make_client, tmp_path):
    catalogs("ar", "ur")
    client = await make_client(settings_from(tmp_path, FULL_CONFIG), full_snapshot())
    styles = set()
    for locale, tag in (("ar_EG", "ar"), ("ur_PK", "ur"), ("fa_IR", "en"), ("de_DE", "en")):
        direction = "rtl" if tag in ("ar", "ur") else "ltr"
        page = (await client.get(f"/widget?locale={locale}&layout=ticker")).text
        assert f'<html lang="{tag}" dir="{direction}"' in page, locale
        fragment = (await client.get(f"/widget/fragment?locale={locale}")).text  # included in others' pages
        assert f'lang="{tag}" dir="{direction}"' in fragment.split(">")[0], locale
        styles.add(re.search(r"<style>(.*?)</style>", page, re.S).group(1))
    assert len(styles) == 1  # one stylesheet for every language: the CSP allows it by one hash


def test_every_allowed_locale_resolves_and_claims_a_real_language():
    for locale in sorted(VISITOR_LOCALES):
        lang = language(locale)
        assert lang.tag == "en" or lang.tag.replace("-", "_") in i18n.available(), locale
        assert lang.dir == ("rtl" if lang.tag.split("-")[0] in ("ar", "fa", "he", "ur") else "ltr")


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab %()s<>/&;.,dZ"), max_size=30))
def test_pseudo_never_breaks_a_placeholder(text):
    out = pseudo(text)
    assert re.findall(r"%\([a-z_]+\)[sd]|%%", out) == re.findall(r"%\([a-z_]+\)[sd]|%%", text)
