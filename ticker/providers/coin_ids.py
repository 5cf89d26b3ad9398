"""The maintained table of common coins and each provider's id for them.

Symbols collide on every aggregator (CoinGecko lists several `eth`, `doge`,
`ada`, ...), so ticker never looks a symbol up at run time: a configured
symbol is resolved here, once, at start. Every id below was checked against
the provider's documentation or a captured response (docs/coin-ids.md cites the
evidence for each); an unlisted coin takes `ids = {...}` in the config,
and `ticker resolve SYMBOL` helps find them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ticker.models import canonical_symbol


@dataclass(frozen=True)
class KnownCoin:
    symbol: str
    name: str
    ids: Mapping[str, str]


# Column order of the rows below; None where the provider does not list the
# coin (or the id could not be verified).
_PROVIDERS = ("coingecko", "coinpaprika", "kraken", "binance", "coinbase")

# symbol, name, coingecko, coinpaprika, kraken (pair to query), binance (USDT pair), coinbase (product)
_ROWS: tuple[tuple[str, str, str | None, str | None, str | None, str | None, str | None], ...] = (
    ("BTC", "Bitcoin", "bitcoin", "btc-bitcoin", "XBTUSD", "BTCUSDT", "BTC-USD"),
    ("ETH", "Ethereum", "ethereum", "eth-ethereum", "ETHUSD", "ETHUSDT", "ETH-USD"),
    ("NEO", "NEO", "neo", "neo-neo", None, "NEOUSDT", None),
    ("WAVES", "Waves", "waves", "waves-waves", None, None, None),
    ("XMR", "Monero", "monero", "xmr-monero", "XMRUSD", None, None),
    ("XNO", "Nano", "nano", "xno-nano", None, "XNOUSDT", None),
    ("ARK", "ARK", "ark", "ark-ark", None, "ARKUSDT", None),
    ("ARRR", "Pirate Chain", "pirate-chain", "arrr-pirate", None, None, None),
    ("DOGE", "Dogecoin", "dogecoin", "doge-dogecoin", "XDGUSD", "DOGEUSDT", "DOGE-USD"),
    ("LTC", "Litecoin", "litecoin", "ltc-litecoin", "LTCUSD", "LTCUSDT", "LTC-USD"),
    ("ADA", "Cardano", "cardano", "ada-cardano", "ADAUSD", "ADAUSDT", "ADA-USD"),
    ("USDT", "Tether", "tether", "usdt-tether", None, None, None),
    ("BNB", "BNB", "binancecoin", "bnb-binance-coin", None, "BNBUSDT", None),
    ("SOL", "Solana", "solana", "sol-solana", "SOLUSD", "SOLUSDT", "SOL-USD"),
    ("XRP", "XRP", "ripple", "xrp-xrp", "XRPUSD", "XRPUSDT", "XRP-USD"),
    ("USDC", "USD Coin", "usd-coin", "usdc-usd-coin", None, "USDCUSDT", None),
    ("TRX", "TRON", "tron", "trx-tron", None, "TRXUSDT", None),
    ("AVAX", "Avalanche", "avalanche-2", "avax-avalanche", None, "AVAXUSDT", None),
    ("LINK", "Chainlink", "chainlink", "link-chainlink", None, "LINKUSDT", None),
    ("DOT", "Polkadot", "polkadot", "dot-polkadot", None, "DOTUSDT", None),
    ("POL", "POL (ex-MATIC)", "polygon-ecosystem-token", "pol-polygon-ecosystem-token", None, "POLUSDT", None),
    ("SHIB", "Shiba Inu", "shiba-inu", "shib-shiba-inu", None, "SHIBUSDT", None),
    ("BCH", "Bitcoin Cash", "bitcoin-cash", "bch-bitcoin-cash", None, "BCHUSDT", None),
    ("UNI", "Uniswap", "uniswap", "uni-uniswap", None, "UNIUSDT", None),
    ("XLM", "Stellar", "stellar", "xlm-stellar", None, "XLMUSDT", None),
    ("ATOM", "Cosmos Hub", "cosmos", "atom-cosmos", None, "ATOMUSDT", None),
    ("ETC", "Ethereum Classic", "ethereum-classic", "etc-ethereum-classic", "ETCUSD", "ETCUSDT", "ETC-USD"),
    ("FIL", "Filecoin", "filecoin", "fil-filecoin", None, "FILUSDT", None),
    ("HBAR", "Hedera", "hedera-hashgraph", "hbar-hedera-hashgraph", None, "HBARUSDT", None),
    ("ICP", "Internet Computer", "internet-computer", "icp-internet-computer", None, "ICPUSDT", None),
    ("APT", "Aptos", "aptos", "apt-aptos", None, "APTUSDT", None),
    ("NEAR", "NEAR Protocol", "near", "near-near-protocol", None, "NEARUSDT", None),
    ("ARB", "Arbitrum", "arbitrum", "arb-arbitrum", None, "ARBUSDT", None),
    ("OP", "Optimism", "optimism", "op-optimism", None, "OPUSDT", None),
    ("VET", "VeChain", "vechain", "vet-vechain", None, "VETUSDT", None),
    ("ALGO", "Algorand", "algorand", "algo-algorand", None, "ALGOUSDT", None),
    ("GRT", "The Graph", "the-graph", "grt-the-graph", None, "GRTUSDT", None),
    ("AAVE", "Aave", "aave", "aave-new", None, "AAVEUSDT", None),
    ("MKR", "Maker", "maker", "mkr-maker", None, "MKRUSDT", None),
    ("XTZ", "Tezos", "tezos", "xtz-tezos", None, "XTZUSDT", None),
    ("EOS", "EOS", "eos", "eos-eos", None, "EOSUSDT", None),
    ("THETA", "Theta Network", "theta-token", "theta-theta-token", None, "THETAUSDT", None),
    ("FTM", "Fantom", "fantom", "ftm-fantom", None, None, None),
    ("SAND", "The Sandbox", "the-sandbox", "sand-the-sandbox", None, "SANDUSDT", None),
    ("MANA", "Decentraland", "decentraland", "mana-decentraland", None, "MANAUSDT", None),
    ("AXS", "Axie Infinity", "axie-infinity", "axs-axie-infinity", None, "AXSUSDT", None),
    ("ZEC", "Zcash", "zcash", "zec-zcash", None, "ZECUSDT", None),
    ("DASH", "Dash", "dash", "dash-dash", None, "DASHUSDT", None),
    ("DAI", "Dai", "dai", "dai-dai", None, None, None),
    ("WBTC", "Wrapped Bitcoin", "wrapped-bitcoin", "wbtc-wrapped-bitcoin", None, "WBTCUSDT", None),
    ("TON", "Toncoin", "the-open-network", "ton-toncoin", None, "TONUSDT", None),
    ("SUI", "Sui", "sui", "sui-sui", None, "SUIUSDT", None),
    ("PEPE", "Pepe", "pepe", "pepe-pepe", None, "PEPEUSDT", None),
    ("KAS", "Kaspa", "kaspa", "kas-kaspa", None, None, None),
    ("INJ", "Injective", "injective-protocol", "inj-injective-protocol", None, "INJUSDT", None),
    ("CRO", "Cronos", "crypto-com-chain", "cro-cryptocom-chain", None, None, None),
    ("QNT", "Quant", "quant-network", "qnt-quant", None, "QNTUSDT", None),
    ("STX", "Stacks", "blockstack", "stx-blockstack", None, "STXUSDT", None),
    ("IMX", "ImmutableX", "immutable-x", "imx-immutable-x", None, "IMXUSDT", None),
    ("LEO", "LEO Token", "leo-token", "leo-leo-token", None, None, None),
    ("OKB", "OKB", "okb", "okb-okb", None, None, None),
    ("XEM", "NEM", "nem", "xem-nem", None, None, None),
    ("ZIL", "Zilliqa", "zilliqa", "zil-zilliqa", None, "ZILUSDT", None),
    ("DCR", "Decred", "decred", "dcr-decred", None, "DCRUSDT", None),
    ("BAT", "Basic Attention", "basic-attention-token", "bat-basic-attention-token", None, "BATUSDT", None),
    ("COMP", "Compound", "compound-governance-token", "comp-compoundd", None, "COMPUSDT", None),
)

# Kraken's WebSocket v2 names for the rows above that have a Kraken REST pair: v2 says BTC and DOGE where
# REST says XBT and XDG, and puts a slash before the quote (docs/coin-ids.md); id key "kraken_ws".
KRAKEN_WS = "kraken_ws"
_KRAKEN_WS_PAIRS: Mapping[str, str] = {
    "BTC": "BTC/USD",
    "ETH": "ETH/USD",
    "XMR": "XMR/USD",
    "DOGE": "DOGE/USD",
    "LTC": "LTC/USD",
    "ADA": "ADA/USD",
    "SOL": "SOL/USD",
    "XRP": "XRP/USD",
    "ETC": "ETC/USD",
}

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC", "ETH", "NEO", "WAVES", "XMR", "XNO", "ARK", "ARRR", "DOGE", "LTC", "ADA")


def _build_table() -> Mapping[str, KnownCoin]:
    table: dict[str, KnownCoin] = {}
    for symbol, name, *ids in _ROWS:
        provider_ids = {provider: pid for provider, pid in zip(_PROVIDERS, ids, strict=True) if pid}
        if symbol in _KRAKEN_WS_PAIRS:
            provider_ids[KRAKEN_WS] = _KRAKEN_WS_PAIRS[symbol]
        table[symbol] = KnownCoin(symbol, name, MappingProxyType(provider_ids))
    return MappingProxyType(table)


KNOWN_COINS: Mapping[str, KnownCoin] = _build_table()


def lookup(symbol: str) -> KnownCoin | None:
    return KNOWN_COINS.get(canonical_symbol(symbol))
