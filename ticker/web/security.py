"""Security headers: what each kind of response may load, and who may frame it.

The widget's inline CSS and JS are constants, allowed by hash (its bodies are
rendered once per snapshot, so there is no per-request nonce); it may load
images and data only from us, and only the configured sites may frame it.
Everything else may not be framed at all.
"""

from __future__ import annotations

from collections.abc import Sequence

COMMON_HEADERS: dict[str, str] = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
NO_FRAMING_CSP = "default-src 'none'; frame-ancestors 'none'"
API_HEADERS = {"content-security-policy": NO_FRAMING_CSP}
LANDING_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def frame_ancestors(allowed: Sequence[str]) -> str:
    """'self' always; each configured origin (or *) as a CSP source; quotes kept off user input."""
    sources = ["'self'"]
    for origin in allowed:
        if origin == "*" or origin.startswith(("http://", "https://")):
            sources.append(origin.rstrip("/"))
        elif origin in ("self", "'self'"):
            continue
    return " ".join(dict.fromkeys(sources))


def widget_csp(*, style_hash: str, script_hash: str, allowed_framers: Sequence[str], own_css: bool) -> str:
    styles = f"{style_hash} 'self'" if own_css else style_hash
    return (
        f"default-src 'none'; style-src {styles}; script-src {script_hash}; img-src 'self' data:; "
        f"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {frame_ancestors(allowed_framers)}"
    )


class CorsPolicy:
    """Who may read /api/* from a browser: public JSON, GET only, never with credentials.

    With "*" the header is constant and goes into the precomputed headers. With a list of origins
    it is chosen per request from the Origin header, so every answer (with or without an Origin,
    allowed or not) says `Vary: Origin`: else a shared cache could hand the answer without the
    header to a browser of an allowed origin.
    """

    def __init__(self, origins: Sequence[str]) -> None:
        self.wildcard = "*" in origins
        self._allowed = {origin.rstrip("/").encode() for origin in origins if origin != "*"}

    @property
    def static_headers(self) -> dict[str, str]:
        return {"access-control-allow-origin": "*"} if self.wildcard else {}

    @property
    def vary(self) -> str | None:
        """The request header the answers depend on, for a response's Vary; None with "*"."""
        return None if self.wildcard else "Origin"

    def allow_origin(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """The per-request header alone, for answers whose Vary already names Origin."""
        if self.wildcard or origin not in self._allowed:
            return []
        return [(b"access-control-allow-origin", origin)]

    def headers_for(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """The per-request headers of an answer with no Vary of its own (the stream, errors)."""
        if self.wildcard:
            return []
        return [*self.allow_origin(origin), (b"vary", b"Origin")]

    def preflight(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        allow = b"*" if self.wildcard else (origin if origin in self._allowed else b"")
        if not allow:
            return [(b"vary", b"Origin")]
        return [
            (b"access-control-allow-origin", allow),
            (b"access-control-allow-methods", b"GET, HEAD"),
            (b"access-control-allow-headers", b"If-None-Match"),
            (b"access-control-max-age", b"86400"),
            (b"vary", b"Origin"),
        ]
