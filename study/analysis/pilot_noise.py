"""Seed-to-seed noise of the accuracy pilots' validation accuracy, from pilots that differ only in seed.

Issue 14's attempts compare arms by their two-seed mean validation accuracy, so what a lead means depends
on how far two such means fall apart by chance. Every configuration run with seeds 0 and 1 gives one
difference d = acc(seed 0) - acc(seed 1); with exchangeable seeds its variance is 2 sigma^2 whatever the
configuration's own accuracy, so sigma (one seed's noise) is estimated as sqrt(mean(d^2) / 2) over the pairs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SEED_KEY = "train.seed"


@dataclass(frozen=True)
class SeedPair:
    """One configuration's validation accuracy at seed 0 and at seed 1 (fractions)."""

    name: str  # the seed-0 run's name (its folder)
    seed0: float
    seed1: float

    @property
    def difference(self) -> float:
        return self.seed0 - self.seed1


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_key(config: Mapping[str, Any]) -> str:
    """The stored RunConfig without its seed, as one comparable string.

    Fields that are off (None, 0, False) are left out: a field added to the config later defaults to off,
    and records written before it lack it (aug_clean_epochs) or hold None; all three train alike.
    """
    flat = {k: v for k, v in _flat(config).items() if k != SEED_KEY and v not in (None, 0, False)}
    return json.dumps(flat, sort_keys=True)


def seed_pairs(runs: Mapping[str, Mapping[str, Any]]) -> list[SeedPair]:
    """Pairs of runs (name -> a pilot's result.json) whose configs differ only in seed, 0 and 1.

    When a configuration was run more than once at a seed, the first name in sorted order is used.
    """
    by_key: dict[str, dict[int, tuple[str, float]]] = {}
    for name in sorted(runs):
        result = runs[name]["result"]
        config = result["config"]
        seed = int(config.get("train", {}).get("seed", 0))
        by_key.setdefault(config_key(config), {}).setdefault(seed, (name, float(result["val_accuracy"])))
    pairs = [
        SeedPair(name=seeds[0][0], seed0=seeds[0][1], seed1=seeds[1][1])
        for seeds in by_key.values()
        if 0 in seeds and 1 in seeds
    ]
    return sorted(pairs, key=lambda p: p.name)


def per_seed_sd(pairs: Iterable[SeedPair]) -> float:
    """One seed's standard deviation, sqrt(mean(d^2) / 2); ValueError with fewer than two pairs."""
    diffs = [p.difference for p in pairs]
    if len(diffs) < 2:
        raise ValueError(f"need at least two seed pairs to estimate the noise, found {len(diffs)}")
    return math.sqrt(sum(d * d for d in diffs) / len(diffs) / 2)


def difference_sd(sd: float, seeds_per_arm: int) -> float:
    """Standard deviation of the difference between two arms' means over `seeds_per_arm` seeds each."""
    return sd * math.sqrt(2 / seeds_per_arm)


def seeds_to_resolve(sd: float, lead: float, *, z: float = 2.0) -> int:
    """Fewest seeds per arm for which a true `lead` is `z` standard deviations of the arms' difference."""
    if lead <= 0:
        raise ValueError("lead must be positive")
    return max(1, math.ceil(2 * (z * sd / lead) ** 2))
