"""Exact unit conversions between the currencies we serve.

A sat is 1e-8 BTC. In binary floating point `price * 100_000_000` is off in the last digit for
about 14 % of 8-decimal BTC prices (0.0000021 BTC gives 209.99999999999997 sats). Taking the
price's shortest decimal form (its repr, which is what the provider's JSON said) and shifting the
decimal point is exact; only the result becomes a float, because a Quote and the JSON carry floats.
"""

from __future__ import annotations

from decimal import Decimal

SATS_PER_BTC = 100_000_000
SATS_EXPONENT = 8  # 1 BTC = 10**8 sats


def btc_to_sats(price: float) -> float:
    """A BTC price in sats, exact: 0.0000021 -> 210.0. Never raises (nan and inf pass through)."""
    return float(Decimal(repr(price)).scaleb(SATS_EXPONENT))
