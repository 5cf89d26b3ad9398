"""Icon downloads: one UpstreamSession per icon CDN host, every address checked before we connect.

Here, not in icons.py, because this is where ticker talks upstream (httpx, sessions, manners), and
web/ imports icons.py for the cache, which so stays free of both.

- Per host: a 429 (with or without Retry-After) from one CDN host holds only that host, and icons
  spend no API budget. `poller.timeout_seconds` bounds each whole request (and the name lookup),
  MAX_ICON_BYTES its body. A host that does not answer (timeout, refused) backs off as a provider
  does, so a dead host costs a few requests a pass, not the pass's whole time budget.
- SSRF: icon URLs come from upstream data. The host name is resolved here and refused if any of its
  addresses is private, link-local (cloud metadata at 169.254.169.254), shared (100.64.0.0/10:
  Alibaba's metadata), multicast, reserved or unspecified; loopback stays allowed (a local mirror,
  tests). We then connect to the checked address itself, sending the original Host header and TLS
  SNI (httpcore's `sni_hostname` extension: the certificate is still verified for the real name),
  so a DNS answer that changes between check and connect (rebinding) cannot redirect us.
  `Connection: close`, because the pool keys connections by address: one verified for one name
  must not be reused for another name on the same address. No redirects: each hop would need
  the same check.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx

from ticker.exceptions import ProviderError
from ticker.icons import MAX_ICON_BYTES, Icon, IconDeferred, raster_icon
from ticker.providers.manners import BLOCKED_STATUSES, RATE_LIMIT_STATUSES, Manners
from ticker.providers.session import UpstreamSession

logger = logging.getLogger(__name__)

MAX_ICON_HOSTS = 16  # sessions kept; icons of a new host beyond that wait for one to be free of holds
DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]  # (host, port) -> addresses


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` has, in the resolver's order."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def allowed_address(text: str) -> bool:
    """Whether we may connect to this address: a public one, or loopback (a local mirror, tests)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour  # (NAT64's 64:ff9b::/96 is reserved)
        if embedded is not None:
            return allowed_address(str(embedded))
    if address.is_loopback:
        return True
    return address.is_global and not (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class _HostManners(Manners):
    """A provider's manners, except that 401/403 refuse one object, not the host (S3 and CloudFront
    answer 403 for a missing key), so they do not hold the host for an hour."""

    def hold_for(self, err: ProviderError) -> bool:
        if err.retry_after is None and err.status in BLOCKED_STATUSES:
            return False
        return super().hold_for(err)


class IconHosts:
    """An `IconSource`: icon downloads, each through its host's session."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float,
        interval: float,
        max_hosts: int = MAX_ICON_HOSTS,
        resolver: Resolver = resolve,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._interval = interval
        self._max_hosts = max_hosts
        self._resolve = resolver
        self._monotonic = monotonic
        self._wall = wall
        self._sessions: OrderedDict[str, UpstreamSession] = OrderedDict()

    def session(self, host: str) -> UpstreamSession | None:
        """The host's session, made on first use; None while `max_hosts` others are all held."""
        session = self._sessions.get(host)
        if session is None:
            if len(self._sessions) >= self._max_hosts and not self._forget_one():
                return None
            manners = _HostManners(f"icons:{host}", interval=self._interval, monotonic=self._monotonic, wall=self._wall)
            session = UpstreamSession(
                manners.name,
                self._client,
                manners,
                timeout=self._timeout,
                max_bytes=MAX_ICON_BYTES,
                monotonic=self._monotonic,
            )
            self._sessions[host] = session
        self._sessions.move_to_end(host)
        return session

    def _forget_one(self) -> bool:
        """Drop the least recently used host that is free to be asked: forgetting a hold would break it."""
        for host, session in self._sessions.items():
            if session.manners.wait_seconds() <= 0:
                del self._sessions[host]
                return True
        return False

    async def download(self, url: str) -> Icon | None:
        """The icon at `url`, or None (logged) if it gives none: not a small raster image over http(s)
        from an allowed address. Raises IconDeferred, sending nothing, while its host is held or backing off."""
        target = _parse(url)
        if target is None:
            logger.info("not downloading icon %.80r: not a plain http(s) URL", url)
            return None
        host = target.raw_host.decode("ascii")
        session = self.session(host)
        if session is None or session.manners.wait_seconds() > 0:
            raise IconDeferred(host)
        try:
            with anyio.fail_after(self._timeout):
                address = await self._address(host, target.port or DEFAULT_PORTS[target.scheme])
        except (OSError, TimeoutError) as err:
            session.manners.failed(ProviderError(session.name, f"name lookup failed ({type(err).__name__})"))
            logger.info("icon %.80s: cannot resolve %s (%s)", url, host, type(err).__name__)
            return None
        if address is None:
            return None
        headers = {"host": target.netloc.decode("ascii"), "connection": "close"}
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        try:
            _, response_headers, body = await session.get(
                str(target.copy_with(host=address)), headers=headers, extensions=extensions
            )
        except ProviderError as err:
            if err.held or err.retry_after is not None or err.status in RATE_LIMIT_STATUSES:
                raise IconDeferred(host) from None  # the host is held now: ask again when the hold ends
            if err.status is None:
                session.manners.failed(err)  # no answer at all: back off this host
            else:
                session.manners.succeeded()  # it answered (404, 403, too large): the host is fine
            logger.info("icon %.80s: %s", url, err.message)
            return None
        session.manners.succeeded()
        kind = response_headers.get("content-type", "")
        icon = raster_icon(body, kind)
        if icon is None:
            logger.info("icon %.80s: content type %.40r is not an accepted raster image", url, kind)
        return icon

    async def _address(self, host: str, port: int) -> str | None:
        """The address to connect to, if every address of `host` is allowed (else None, logged)."""
        try:
            addresses: Sequence[str] = [str(ipaddress.ip_address(host))]
        except ValueError:
            addresses = await self._resolve(host, port)
        refused = [address for address in addresses if not allowed_address(address)]
        if refused or not addresses:
            logger.info("not downloading icons from %s: it resolves to %s", host, ", ".join(refused) or "nothing")
            return None
        return sorted(addresses, key=lambda address: ":" in address)[0]  # IPv4 first: reachable nearly everywhere


def _parse(url: str) -> httpx.URL | None:
    """`url` if it is http(s) with a host and no user info (icons have none; it would be sent as a header)."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return None
    if target.scheme not in DEFAULT_PORTS or not target.raw_host or target.userinfo:
        return None
    return target
