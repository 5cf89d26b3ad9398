"""Coin icons, downloaded once by the poller's side work and served by us at /icons/{symbol}.

Visitors' browsers never contact an icon host: side work fetches each
provider icon URL once (raster types only, checked by magic bytes as well as
content type: an upstream SVG could carry script), keeps it on disk beside
the snapshot, and a coin without one gets a generated monogram SVG.

The downloading itself (hosts, sessions, the address check) is an
`IconSource` from providers/icon_hosts.py: web/ imports this module for the
cache, so it stays free of httpx and providers.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Protocol

import anyio

logger = logging.getLogger(__name__)

MAX_ICON_BYTES = 128 * 1024
RETRY_SECONDS = 24 * 3600.0
ICON_CONCURRENCY = 4  # downloads at a time: a few slow hosts cannot stall the rest, nor flood one host
# Magic bytes of the raster formats we accept, by content type.
RASTER_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


@dataclass(frozen=True)
class Icon:
    body: bytes
    content_type: str

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


class IconCache:
    def __init__(self, directory: Path | None, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._dir = directory
        self._icons: dict[str, Icon] = {}
        self._failed_at: dict[str, float] = {}
        self._monotonic = monotonic
        self._monograms: dict[str, Icon] = {}

    def get(self, symbol: str) -> Icon | None:
        return self._icons.get(symbol)

    def icon_or_monogram(self, symbol: str) -> Icon:
        icon = self._icons.get(symbol)
        if icon is not None:
            return icon
        if symbol not in self._monograms:
            self._monograms[symbol] = Icon(monogram_svg(symbol), "image/svg+xml")
        return self._monograms[symbol]

    def load(self) -> None:
        """Icons saved by an earlier run, so a restart needs no download."""
        if self._dir is None or not self._dir.is_dir():
            return
        by_extension = {ext: kind for kind, ext in EXTENSIONS.items()}
        for path in self._dir.iterdir():
            kind = by_extension.get(path.suffix.lstrip("."))
            if kind is None or not path.stem.isalnum():
                continue
            try:
                body = path.read_bytes()
            except OSError:
                continue
            if _sniff(body) == kind:
                self._icons[path.stem] = Icon(body, kind)

    def put(self, symbol: str, icon: Icon) -> None:
        self._icons[symbol] = icon
        if self._dir is None:
            return
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            (self._dir / f"{symbol}.{EXTENSIONS[icon.content_type]}").write_bytes(icon.body)
        except OSError as err:
            logger.warning("cannot save icon of %s in %s: %s", symbol, self._dir, err)

    async def refresh(
        self,
        urls: Mapping[str, str],
        *,
        source: IconSource | None = None,
        shared: SharedIcons | None = None,
        concurrency: int = ICON_CONCURRENCY,
    ) -> int:
        """Fetch the icons not held yet: from the shared store first, else (with a `source`) from upstream.

        `concurrency` at a time. Failed downloads are retried a day later; icons whose host is held
        are asked again next pass. Cancelling this (side work's time budget) loses nothing: each icon
        is kept the moment it arrives, and one cut off mid-download is not marked failed.
        Returns how many icons were added.
        """
        wanted = [(symbol, url) for symbol, url in urls.items() if symbol not in self._icons and symbol.isalnum()]
        if not wanted:
            return 0
        slots = anyio.Semaphore(concurrency)
        added = 0

        async def one(symbol: str, url: str) -> None:
            nonlocal added
            async with slots:
                if await self._obtain(symbol, url, source, shared):
                    added += 1

        async with anyio.create_task_group() as tasks:
            for symbol, url in wanted:
                tasks.start_soon(one, symbol, url)
        return added

    async def _obtain(self, symbol: str, url: str, source: IconSource | None, shared: SharedIcons | None) -> bool:
        icon = await shared.get_icon(symbol) if shared is not None else None
        if icon is not None:
            if not is_raster(icon):
                return False
            self.put(symbol, icon)
            return True
        if source is None:
            return False
        failed = self._failed_at.get(symbol)
        if failed is not None and self._monotonic() - failed < RETRY_SECONDS:
            return False
        try:
            icon = await source.download(url)
        except IconDeferred:
            return False
        if icon is None or not is_raster(icon):
            self._failed_at[symbol] = self._monotonic()
            return False
        self.put(symbol, icon)  # before any other await: a cut-off pass keeps what it downloaded
        if shared is not None:
            await shared.put_icon(symbol, icon)
        return True


class IconDeferred(Exception):
    """Not now, nothing sent: the icon's host is held (429, Retry-After) or backing off. Ask next pass."""


class IconSource(Protocol):
    """Downloads one icon: providers/icon_hosts.py `IconHosts`."""

    async def download(self, url: str) -> Icon | None:
        """The icon, or None if the URL gives none (retried a day later); raises IconDeferred."""
        ...


class SharedIcons(Protocol):
    """Where instances share downloaded icons (Redis), so only the poller downloads them."""

    async def get_icon(self, symbol: str) -> Icon | None: ...

    async def put_icon(self, symbol: str, icon: Icon) -> None: ...


def raster_icon(body: bytes, content_type: str) -> Icon | None:
    """An icon if `body` is an accepted raster image of the type its header claims, else None."""
    kind = content_type.split(";")[0].strip().lower()
    icon = Icon(body, kind)
    return icon if is_raster(icon) else None


def is_raster(icon: Icon) -> bool:
    return icon.content_type in RASTER_TYPES and _sniff(icon.body) == icon.content_type


def _sniff(body: bytes) -> str | None:
    for kind, signatures in RASTER_TYPES.items():
        if any(body.startswith(sig) for sig in signatures):
            if kind == "image/webp" and body[8:12] != b"WEBP":
                continue
            return kind
    return None


MONOGRAM_CHARS = 5  # a longer symbol shows its first four characters and "…"
# Advance widths in em of bold sans-serif characters (about Helvetica Bold's; others default to CAPITAL_EM):
# the monogram's text is condensed to fit its circle by this estimate, whichever sans-serif font draws it.
CAPITAL_EM = 0.72
ADVANCE_EM = {"I": 0.28, "J": 0.56, "M": 0.83, "W": 0.94, "…": 1.0} | dict.fromkeys("0123456789", 0.56)
TEXT_ROOM = 30.0  # units of the 32-unit circle: its chord at the height of 13-unit capitals, less a margin


def monogram_svg(symbol: str) -> bytes:
    """A round badge with the symbol, its colour derived from the symbol (stable across runs).

    Drawn on a 32-unit square that the widget shows at 24 px: up to MONOGRAM_CHARS characters, at a font
    size of 16 units for one character down to 13 for three to five (about 10 px on screen), condensed with SVG
    `textLength` when wider than TEXT_ROOM rather than cut: Tether reads "USDT", not "USD".
    """
    hue = int(hashlib.sha256(symbol.encode()).hexdigest()[:4], 16) % 360
    label = symbol if len(symbol) <= MONOGRAM_CHARS else symbol[: MONOGRAM_CHARS - 1] + "…"
    size = {1: 16, 2: 15}.get(len(label), 13)
    width = min(TEXT_ROOM, size * sum(ADVANCE_EM.get(char, CAPITAL_EM) for char in label))
    baseline = 16 + 0.36 * size  # capitals centred: their height is about 0.72 em
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" role="img">'
        f'<circle cx="16" cy="16" r="16" fill="hsl({hue},55%,42%)"/>'
        f'<text x="16" y="{baseline:.2f}" font-family="sans-serif" font-size="{size}" font-weight="700" '
        f'fill="#fff" text-anchor="middle" textLength="{width:.2f}" lengthAdjust="spacingAndGlyphs">'
        f"{escape(label)}</text></svg>"
    ).encode()
