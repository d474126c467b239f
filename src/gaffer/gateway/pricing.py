"""What a call costs: the price table (``prices.yaml`` + the operator's file) and the sum.

Costs are exact integers in nano-USD (1e-9 USD): prices are read as decimals (USD per million
tokens), so ``tokens * price * 1000`` is exact down to a thousandth of a nano-dollar, and is
rounded half-even to a whole nano-dollar once per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from gaffer.errors import UserError
from gaffer.gateway.protocols.base import Usage

PRICES_FILE = Path(__file__).parent / "prices.yaml"
NANO_PER_USD = 1_000_000_000
_FIELDS = ("input", "output", "cache_read", "cache_write")


class PriceFileError(UserError, ValueError):
    """A price file that cannot be read or is not the shape of ``prices.yaml``."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens of one model, for each kind of token."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal

    def cost_nano_usd(self, usage: Usage) -> int:
        """The cost of ``usage`` in nano-USD (exact, rounded half-even once)."""
        # USD/M tokens * tokens = micro-USD... * 1000 = nano-USD.
        total = (
            self.input * usage.input_tokens
            + self.output * usage.output_tokens
            + self.cache_read * usage.cache_read_tokens
            + self.cache_write * usage.cache_write_tokens
        ) * 1000
        return int(total.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PriceFileError(f"{where}: a price is a number (USD per million tokens)")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise PriceFileError(f"{where}: {value!r} is not a number") from exc
    if not number.is_finite() or number < 0:
        raise PriceFileError(f"{where}: a price is a number >= 0")
    return number


def load_prices(path: Path) -> dict[str, ModelPrice]:
    """The models of one price file: ``{"models": {name: {input, output, cache_read,
    cache_write}}}`` (USD per million tokens; ``cache_*`` default to 0). Raises
    :class:`PriceFileError` naming the file and the bad entry."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PriceFileError(f"price file {path}: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise PriceFileError(f"price file {path}: expected a 'models:' mapping")
    prices: dict[str, ModelPrice] = {}
    for name, entry in models.items():
        where = f"price file {path}, model {name}"
        if not isinstance(entry, dict) or "input" not in entry or "output" not in entry:
            raise PriceFileError(f"{where}: needs at least 'input' and 'output'")
        unknown = set(entry) - set(_FIELDS)
        if unknown:
            raise PriceFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        values = {f: _decimal(entry.get(f, 0), f"{where}.{f}") for f in _FIELDS}
        prices[str(name)] = ModelPrice(**values)
    return prices


class PriceTable:
    """Prices by model name: exact match first, then the longest known name the model starts
    with; a ``provider/`` prefix (``openai/gpt-4o``) is dropped first."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)
        self._by_length = sorted(self._prices, key=len, reverse=True)

    @classmethod
    def load(cls, extra: Path | None = None) -> PriceTable:
        """The built-in ``prices.yaml``, with ``extra``'s models added or overriding."""
        prices = load_prices(PRICES_FILE)
        if extra is not None:
            prices.update(load_prices(extra))
        return cls(prices)

    def price(self, model: str | None) -> ModelPrice | None:
        """The price of ``model``, or None when the table does not know it."""
        if not model:
            return None
        name = model.rsplit("/", 1)[-1]
        if name in self._prices:
            return self._prices[name]
        for known in self._by_length:
            if name.startswith(known):
                return self._prices[known]
        return None

    def cost_nano_usd(self, model: str | None, usage: Usage) -> int | None:
        """What ``usage`` of ``model`` costs in nano-USD, or None for an unknown model."""
        price = self.price(model)
        return None if price is None else price.cost_nano_usd(usage)
