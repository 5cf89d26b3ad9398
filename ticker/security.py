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
