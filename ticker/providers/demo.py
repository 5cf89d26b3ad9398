"""A simulated price source for `ticker serve --demo` and `ticker fetch --demo`: no network, clearly labelled.

A seeded random walk from realistic prices, so two runs show the same numbers and an operator can
preview their own setup with no network. Every quote says `source: "demo"`; it is never used
unless --demo is given.

What it can price: about 110 coins, the ~100 largest by market cap (sub-cent ones such as PEPE,
SHIB and BONK included) plus every coin in the maintained id table (providers/coin_ids.py), in
every currency ticker accepts, converted with the dated table in rates.py (so PKR prices are about
280 times the USD ones; btc, eth and sats through the demo's own BTC and ETH prices). Stablecoins
stay within a few hundredths of a percent of 1 USD. A coin is matched by its CoinGecko id, or by
symbol when it has none; a coin it cannot match gets no invented number: it has no quote, so it
shows as unavailable, and one WARNING at start names such coins.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ticker.models import Coin, Quote
from ticker.providers.session import UpstreamSession
from ticker.rates import FALLBACK_USD_PRICES, from_usd

logger = logging.getLogger(__name__)

STEP = 0.004  # standard deviation of one round's relative move
STABLE_STEP = 0.0002  # a stablecoin's deviation from its peg, each round
OPEN_SPREAD = 0.05  # the simulated price 24 h ago lies within this fraction of the start


@dataclass(frozen=True)
class DemoCoin:
    symbol: str
    coingecko: str  # CoinGecko id: how a configured coin is matched
    usd: float  # starting price in USD
    stable: bool = False  # pegged to 1 USD: hovers around it instead of walking away


# Approximate USD prices of late 2026, rounded; for the demo only (dated 2026-11, levels approximate).
_TABLE = """
BTC bitcoin 90917.04          ETH ethereum 3021.55           USDT tether 1 s
XRP ripple 2.05               BNB binancecoin 880            SOL solana 135
USDC usd-coin 1 s             TRX tron 0.28                  DOGE dogecoin 0.1583
ADA cardano 0.4127            STETH staked-ether 3020        WBTC wrapped-bitcoin 90900
HYPE hyperliquid 35           LINK chainlink 13.5            BCH bitcoin-cash 540
XLM stellar 0.25              USDE ethena-usde 1 s           SUI sui 1.65
AVAX avalanche-2 14           LEO leo-token 9.2              HBAR hedera-hashgraph 0.15
LTC litecoin 84.36            SHIB shiba-inu 0.0000085       TON the-open-network 1.6
XMR monero 402.17             DOT polkadot 2.3               DAI dai 1 s
CRO crypto-com-chain 0.11     UNI uniswap 6.0                MNT mantle 1.1
ZEC zcash 450                 BGB bitget-token 3.8           AAVE aave 180
NEAR near 2.0                 PEPE pepe 0.0000045            USD1 usd1-wlfi 1 s
ENA ethena 0.28               TAO bittensor 280              APT aptos 2.1
ETC ethereum-classic 13       ONDO ondo-finance 0.5          ICP internet-computer 3.5
WLD worldcoin-wld 0.6         POL polygon-ecosystem-token 0.13   ARB arbitrum 0.21
KAS kaspa 0.05                ALGO algorand 0.13             VET vechain 0.013
PYUSD paypal-usd 1 s          ATOM cosmos 2.4                FIL filecoin 1.6
RENDER render-token 1.6       SKY sky 0.06                   OKB okb 110
QNT quant-network 80          JUP jupiter-exchange-solana 0.25   SEI sei-network 0.15
FLR flare-networks 0.013      INJ injective-protocol 5.5     FDUSD first-digital-usd 1 s
TIA celestia 0.6              OP optimism 0.33               STX blockstack 0.28
XDC xdce-crowd-sale 0.05      IMX immutable-x 0.3            GRT the-graph 0.045
BONK bonk 0.0000095           CAKE pancakeswap-token 2.3     FET fetch-ai 0.22
WIF dogwifcoin 0.38           PENGU pudgy-penguins 0.011     TRUMP official-trump 5.8
PUMP pump-fun 0.0028          LDO lido-dao 0.6               CRV curve-dao-token 0.4
XTZ tezos 0.5                 IOTA iota 0.1                  THETA theta-token 0.35
KAIA kaia 0.07                FLOKI floki 0.000045           JASMY jasmycoin 0.0075
SAND the-sandbox 0.14         GALA gala 0.0065               PAXG pax-gold 4100
XAUT tether-gold 4100         ENS ethereum-name-service 10   NEXO nexo 1.0
RAY raydium 1.1               MANA decentraland 0.16         EOS eos 0.2
AXS axie-infinity 1.0         PYTH pyth-network 0.07         ZK zksync 0.04
STRK starknet 0.12            MKR maker 1500                 DASH dash 45
HNT helium 2.0                CHZ chiliz 0.03                BTT bittorrent 0.0000005
USDS usds 1 s                 TUSD true-usd 1 s              WETH weth 3021
BSV bitcoin-cash-sv 22        KCS kucoin-shares 11           NOT notcoin 0.0015
NEO neo 4.12                  WAVES waves 0.9412             XNO nano 0.8123
ARK ark 0.3517                ARRR pirate-chain 0.1412       FTM fantom 0.2
XEM nem 0.0015                ZIL zilliqa 0.008              DCR decred 20
BAT basic-attention-token 0.17   COMP compound-governance-token 30
"""


def _parse(text: str) -> tuple[DemoCoin, ...]:
    coins: list[DemoCoin] = []
    words = text.split()
    index = 0
    while index < len(words):
        symbol, coingecko, usd = words[index : index + 3]
        stable = index + 3 < len(words) and words[index + 3] == "s"
        coins.append(DemoCoin(symbol, coingecko, float(usd), stable))
        index += 4 if stable else 3
    return tuple(coins)


DEMO_COINS: tuple[DemoCoin, ...] = _parse(_TABLE)
BY_COINGECKO_ID: Mapping[str, DemoCoin] = MappingProxyType({c.coingecko: c for c in DEMO_COINS})
BY_SYMBOL: Mapping[str, DemoCoin] = MappingProxyType({c.symbol: c for c in DEMO_COINS})


def demo_coin(coin: Coin) -> DemoCoin | None:
    """The table's entry for a configured coin: by CoinGecko id, else (no such id) by symbol; None: not priced."""
    coingecko = coin.ids.get("coingecko")
    if coingecko is not None:
        return BY_COINGECKO_ID.get(coingecko)
    return BY_SYMBOL.get(coin.symbol)


class DemoSource:
    """Deterministic: round N always gives the same prices for the same coins and seed."""

    name = "demo"
    batch_size = 1_000_000
    session: UpstreamSession | None = None  # simulated: no upstream, nothing to hold

    def __init__(self, coins: Iterable[Coin] = (), *, seed: int = 2026) -> None:
        """`coins`: the configured ones, to name at start those the demo cannot price."""
        self._rng = random.Random(seed)
        self._usd: dict[str, float] = {}  # symbol -> the walk's current USD price
        self._open: dict[str, float] = {}  # symbol -> the simulated USD price 24 h ago
        unpriced = sorted(coin.symbol for coin in coins if not coin.is_static and demo_coin(coin) is None)
        if unpriced:
            logger.warning(
                "demo: no realistic price known for %s; shown as unavailable (the demo never invents a number)",
                ", ".join(unpriced),
            )

    def supports(self, coin: Coin) -> bool:
        return demo_coin(coin) is not None

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        walked = [(coin, known) for coin in coins if (known := demo_coin(coin)) is not None]
        for coin, known in walked:
            self._step(coin.symbol, known)
        btc_usd = self._reference("BTC")
        eth_usd = self._reference("ETH")
        quotes = []
        for coin, _ in walked:
            usd = self._usd[coin.symbol]
            change = (usd - self._open[coin.symbol]) / self._open[coin.symbol] * 100
            for currency in currencies:
                price = from_usd(usd, currency, btc_usd=btc_usd, eth_usd=eth_usd)
                if price is not None:  # every accepted currency has a rate; anything else stays unavailable
                    quotes.append(Quote(coin.symbol, currency, price, change, None, self.name))
        return quotes

    def _step(self, symbol: str, known: DemoCoin) -> None:
        """One round of the walk: a stablecoin hovers at its peg, anything else moves from where it was."""
        if known.stable:
            self._open.setdefault(symbol, known.usd * (1 + self._rng.gauss(0.0, STABLE_STEP)))
            self._usd[symbol] = known.usd * (1 + self._rng.gauss(0.0, STABLE_STEP))
            return
        start = self._usd.get(symbol, known.usd)
        self._open.setdefault(symbol, known.usd * (1 + self._rng.uniform(-OPEN_SPREAD, OPEN_SPREAD)))
        self._usd[symbol] = start * (1 + self._rng.gauss(0.0, STEP))

    def _reference(self, symbol: str) -> float:
        """BTC's or ETH's current demo USD price (the table's start if it is not configured)."""
        if symbol in self._usd:
            return self._usd[symbol]
        known = BY_SYMBOL.get(symbol)
        return known.usd if known is not None else FALLBACK_USD_PRICES[symbol.lower()]
