"""A dated table of approximate exchange rates: units of each currency per US dollar.

Two uses, both fine with a rough figure, and never a conversion of a real price (providers quote
every currency themselves):

- the plausibility gate (plausibility.py): a price's USD equivalent must lie in [1e-12, 1e7], a
  span of 19 orders of magnitude, so a rate 30 % off changes no verdict;
- the demo (providers/demo.py): simulated prices in PKR are about 280 times the USD numbers.

Every currency ticker accepts has a rate: the ISO 4217 codes that some territory uses as legal
tender today per CLDR (Babel's data, 153 codes in Babel 2.19), plus btc, eth and sats, which are
priced through BTC's and ETH's USD price (the gate uses the live ones; `FALLBACK_USD_PRICES` only
when none is known yet). A test checks the table against Babel, so a new currency in a Babel
update shows up as a failing test rather than an unchecked price.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from types import MappingProxyType

from ticker.units import SATS_PER_BTC

RATES_AS_OF = date(2026, 11, 30)
RATES_SOURCE = (
    "approximate mid-market levels, rounded to 2-3 significant digits, compiled by hand from published "
    "central-bank and ECB reference rates of 2025-2026; pegged currencies at their peg; where an official "
    "and a parallel rate differ widely (CUP, IRR, KPW, MMK, SDG, SYP, YER) the official one; fast-inflating "
    "currencies (ARS, VES, ...) drift and are the least exact"
)

# Units of the currency per 1 USD, lower-case ISO 4217 codes.
_RATES = """
aed 3.6725  afn 68     all 83     amd 385    aoa 915    ars 1450   aud 1.53   awg 1.79   azn 1.70
bam 1.68    bbd 2.0    bdt 122    bhd 0.376  bif 2950   bmd 1.0    bnd 1.30   bob 6.91   brl 5.35
bsd 1.0     btn 88.5   bwp 13.5   byn 3.0    bzd 2.0    cad 1.40   cdf 2500   chf 0.80   clp 940
cny 7.12    cop 3900   crc 502    cup 24     cve 94.8   czk 21.0   djf 178    dkk 6.42   dop 63
dzd 130     egp 47.5   ern 15     etb 145    eur 0.86   fjd 2.27   fkp 0.75   gbp 0.75   gel 2.70
ghs 11.0    gip 0.75   gmd 72     gnf 8680   gtq 7.67   gyd 209    hkd 7.78   hnl 26.3   htg 131
huf 335     idr 16600  ils 3.30   inr 88.5   iqd 1310   irr 42000  isk 124    jmd 160    jod 0.709
jpy 152     kes 129    kgs 87.4   khr 4010   kmf 423    kpw 900    krw 1430   kwd 0.307  kyd 0.833
kzt 525     lak 21700  lbp 89500  lkr 302    lrd 180    lsl 17.4   lyd 5.45   mad 9.2    mdl 17.0
mga 4450    mkd 53     mmk 2100   mnt 3580   mop 8.0    mru 40     mur 45.5   mvr 15.4   mwk 1735
mxn 18.4    myr 4.20   mzn 63.9   nad 17.4   ngn 1460   nio 36.8   nok 10.1   npr 141.6  nzd 1.74
omr 0.3845  pab 1.0    pen 3.40   pgk 4.20   php 58.5   pkr 281    pln 3.65   pyg 7100   qar 3.64
ron 4.37    rsd 101    rub 81     rwf 1450   sar 3.75   sbd 8.2    scr 14.3   sdg 600    sek 9.45
sgd 1.30    shp 0.75   sle 23     sos 571    srd 38.5   ssp 4600   stn 21.1   syp 13000  szl 17.4
thb 32.5    tjs 9.3    tmt 3.50   tnd 2.95   top 2.40   try 42     ttd 6.78   twd 30.5   tzs 2450
uah 41.5    ugx 3500   usd 1.0    uyu 40     uzs 12000  ves 200    vnd 26300  vuv 120    wst 2.75
xaf 564     xcd 2.70   xcg 1.79   xof 564    xpf 102.6  yer 1600   zar 17.4   zmw 23     zwg 26.8
"""


def _table(text: str) -> Mapping[str, float]:
    words = text.split()
    return MappingProxyType({code: float(rate) for code, rate in zip(words[::2], words[1::2], strict=True)})


UNITS_PER_USD: Mapping[str, float] = _table(_RATES)

# Approximate USD price of 1 BTC and 1 ETH (late 2026): the last resort for btc, eth and sats
# when no live BTC or ETH price is known yet (for example a config whose currencies are all crypto).
FALLBACK_USD_PRICES: Mapping[str, float] = MappingProxyType({"btc": 90_000.0, "eth": 3_000.0})
CRYPTO_UNITS: Mapping[str, tuple[str, float]] = MappingProxyType(
    {"btc": ("btc", 1.0), "eth": ("eth", 1.0), "sats": ("btc", 1.0 / SATS_PER_BTC)}
)


def usd_value(price: float, currency: str, *, btc_usd: float, eth_usd: float) -> float | None:
    """`price` (in `currency`) in US dollars, approximately; None for a currency the table lacks.

    btc, eth and sats go through the given USD prices of BTC and ETH; everything else through the table.
    """
    crypto = CRYPTO_UNITS.get(currency)
    if crypto is not None:
        coin, units = crypto
        return price * units * (btc_usd if coin == "btc" else eth_usd)
    rate = UNITS_PER_USD.get(currency)
    return None if rate is None else price / rate


def from_usd(usd: float, currency: str, *, btc_usd: float, eth_usd: float) -> float | None:
    """The inverse of `usd_value`: an amount of US dollars in `currency`; None for an unknown currency."""
    one = usd_value(1.0, currency, btc_usd=btc_usd, eth_usd=eth_usd)
    return None if one is None or one <= 0 else usd / one
