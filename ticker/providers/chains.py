"""Chains a token may be configured on, named as GeckoTerminal names networks, and their addresses.

`CHAINS` maps a GeckoTerminal network id (the `{network}` of `/api/v2/networks/{network}/...`, listed by
GeckoTerminal's `/networks` endpoint) to the chain's address family and DefiLlama's name for it (the
`{chain}` of `coins.llama.fi/prices/current/{chain}:{address}`). Sources: GeckoTerminal's API guide
(apiguide.geckoterminal.com) and its client libraries' examples (`eth`, `bsc`, `polygon_pos`, `solana`);
DefiLlama's coins API docs (defillama.com/docs/api, "coins") and its SDK examples (`ethereum`, `bsc`,
`polygon`, `avax`, `arbitrum`, `optimism`, `base`, `solana`, `fantom`, `xdai`, `cronos`). Only chains whose
names we could check on both sides are listed; a chain GeckoTerminal knows but this table does not is a
config error that names the table, not a silent miss at run time.

Addresses: EVM chains take `0x` and 40 hex digits in any case (EIP-55 mixed case is kept for display;
it is not verified, which needs Keccak-256); requests use lower case, as both APIs key their answers.
Solana takes a base58 mint address of 32 to 44 characters, case-sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Chain:
    family: str  # "evm" | "solana": which address format it takes
    defillama: str  # DefiLlama's name of the chain


CHAINS: Mapping[str, Chain] = MappingProxyType(
    {
        "eth": Chain("evm", "ethereum"),
        "bsc": Chain("evm", "bsc"),
        "polygon_pos": Chain("evm", "polygon"),
        "arbitrum": Chain("evm", "arbitrum"),
        "optimism": Chain("evm", "optimism"),
        "base": Chain("evm", "base"),
        "avax": Chain("evm", "avax"),
        "ftm": Chain("evm", "fantom"),
        "xdai": Chain("evm", "xdai"),
        "cro": Chain("evm", "cronos"),
        "solana": Chain("solana", "solana"),
    }
)

_EVM = re.compile(r"0x[0-9a-fA-F]{40}")
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
FORMATS = {"evm": "0x followed by 40 hex digits", "solana": "a base58 address of 32 to 44 characters"}


def address_problem(chain: str, address: str) -> str | None:
    """Why `address` is no token address on `chain` (one line), or None when it is well-formed.

    `chain` must be a key of CHAINS.
    """
    family = CHAINS[chain].family
    pattern = _EVM if family == "evm" else _BASE58
    if pattern.fullmatch(address):
        return None
    shown = address if len(address) <= 50 else address[:50] + "…"
    return f"expected {FORMATS[family]} on {chain}, got {shown!r}"


def request_address(chain: str, address: str) -> str:
    """The address as both APIs key it: lower case on EVM chains, as given (case-sensitive) on Solana."""
    return address.lower() if CHAINS[chain].family == "evm" else address


def split_id(token_id: str) -> tuple[str, str]:
    """A provider id "chain:address" as (chain, address); raises ValueError when it has no colon."""
    chain, sep, address = token_id.partition(":")
    if not sep:
        raise ValueError(f"not a chain:address id: {token_id!r}")
    return chain, address
