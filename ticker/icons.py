"""Coin icons, downloaded once by the poller and served by us at /icons/{symbol}.

Visitors' browsers never contact an icon host: the poller fetches each
provider icon URL once (http(s) only, size-limited, raster types only,
checked by magic bytes as well as content type: an upstream SVG could carry
script), keeps it on disk beside the snapshot, and a coin without one gets a
generated monogram SVG.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger(__name__)

MAX_ICON_BYTES = 128 * 1024
RETRY_SECONDS = 24 * 3600.0
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
        client: httpx.AsyncClient,
        urls: Mapping[str, str],
        *,
        shared: SharedIcons | None = None,
        download: bool = True,
    ) -> int:
        """Fetch the icons not held yet: from the shared store first, else (if `download`) from upstream.

        Failed downloads are retried a day later. Returns how many icons were added.
        """
        added = 0
        for symbol, url in urls.items():
            if symbol in self._icons or not symbol.isalnum():
                continue
            icon = await shared.get_icon(symbol) if shared is not None else None
            if icon is None and download:
                failed = self._failed_at.get(symbol)
                if failed is not None and self._monotonic() - failed < RETRY_SECONDS:
                    continue
                icon = await download_icon(client, url)
                if icon is None:
                    self._failed_at[symbol] = self._monotonic()
                    continue
                if shared is not None:
                    await shared.put_icon(symbol, icon)
            if icon is not None and icon.content_type in RASTER_TYPES and _sniff(icon.body) == icon.content_type:
                self.put(symbol, icon)
                added += 1
        return added


class SharedIcons(Protocol):
    """Where instances share downloaded icons (Redis), so only the poller downloads them."""

    async def get_icon(self, symbol: str) -> Icon | None: ...

    async def put_icon(self, symbol: str, icon: Icon) -> None: ...


async def download_icon(client: httpx.AsyncClient, url: str) -> Icon | None:
    """One icon, or None (logged) if it is not a small raster image over http(s)."""
    if not url.startswith(("https://", "http://")) or not _public_host(url):
        logger.info("not downloading icon %.80r: not an http(s) URL on a public host", url)
        return None
    try:
        # No redirects: each hop would need the same check, and icon CDNs answer directly.
        async with client.stream("GET", url, follow_redirects=False, timeout=10) as response:
            if response.status_code != 200 or response.url.scheme not in ("http", "https"):
                logger.info("icon %s: HTTP %d", url, response.status_code)
                return None
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ICON_BYTES:
                    logger.info("icon %s: larger than %d bytes, ignored", url, MAX_ICON_BYTES)
                    return None
    except httpx.HTTPError as err:
        logger.info("icon %s: %s", url, type(err).__name__)
        return None
    if kind not in RASTER_TYPES or _sniff(body) != kind:
        logger.info("icon %s: content type %r is not an accepted raster image", url, kind)
        return None
    return Icon(body, kind)


def _public_host(url: str) -> bool:
    """Upstream-supplied URLs must not make us request private or link-local addresses (cloud metadata,
    an internal admin page). Loopback stays allowed for a mirror on the same host and for tests; host
    names are not resolved here."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return bool(host)  # a name, not an address literal
    if address.is_loopback:
        return True
    return not (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _sniff(body: bytes) -> str | None:
    for kind, signatures in RASTER_TYPES.items():
        if any(body.startswith(sig) for sig in signatures):
            if kind == "image/webp" and body[8:12] != b"WEBP":
                continue
            return kind
    return None


def monogram_svg(symbol: str) -> bytes:
    """A round badge with up to three letters, its colour derived from the symbol (stable across runs)."""
    hue = int(hashlib.sha256(symbol.encode()).hexdigest()[:4], 16) % 360
    text = escape(symbol[:3])
    size = 13 if len(symbol) <= 2 else 10
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" role="img">'
        f'<circle cx="16" cy="16" r="16" fill="hsl({hue},55%,42%)"/>'
        f'<text x="16" y="20.5" font-family="sans-serif" font-size="{size}" '
        f'font-weight="700" fill="#fff" text-anchor="middle">{text}</text></svg>'
    ).encode()
