"""Input drift against the reference profile recorded at training time.

PSI uses bins cut at the training data's deciles (categories for categorical features), with the share of training
rows each bin held counted when the profile was made (ties make it differ from 10 %), so the reference needs no
raw training rows; Kolmogorov–Smirnov (scipy) compares a bounded reservoir sample of live values with the
reference distribution interpolated from the same deciles. Both work on per-minute counts and samples, so a drift
query costs the same after a day or a month of traffic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fingerprints import PROFILE_QUANTILES

RESERVOIR = 256
EPS = 1e-4
#: The conventional PSI reading: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.
PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.2


@dataclass(frozen=True)
class Reference:
    """How one feature is binned, and what share of training rows fell in each bin."""

    kind: str
    edges: np.ndarray | None
    categories: tuple[str, ...]
    expected: np.ndarray
    quantiles: np.ndarray | None

    @property
    def bins(self) -> int:
        return len(self.expected)

    def counts(self, values: Any) -> list[int]:
        if self.kind == "numeric":
            arr = (
                np.asarray(values, dtype=float)
                if isinstance(values, np.ndarray)
                else np.asarray([np.nan if v is None else v for v in values], dtype=float)
            )
            arr = arr[~np.isnan(arr)]
            idx = np.searchsorted(self.edges, arr, side="right")
            return np.bincount(idx, minlength=self.bins).tolist()
        index = {c: i for i, c in enumerate(self.categories)}
        out = [0] * self.bins
        for v in values:
            if v is not None:
                out[index.get(str(v), self.bins - 1)] += 1
        return out


def reference(profile: dict[str, Any]) -> Reference | None:
    if profile.get("kind") == "numeric" and profile.get("quantiles"):
        qs = np.asarray([q for q in profile["quantiles"]], dtype=float)
        if np.isnan(qs).any():
            return None
        edges = np.unique(qs[1:-1])
        shares = profile.get("bins")
        if isinstance(shares, list) and len(shares) == len(edges) + 1:  # counted at training time
            expected = np.asarray(shares, dtype=float)
        else:  # a profile recorded before the shares were: each decile interval taken to hold 10 % of rows
            mids = (qs[:-1] + qs[1:]) / 2
            expected = np.bincount(np.searchsorted(edges, mids, side="right"), minlength=len(edges) + 1).astype(float)
        return Reference("numeric", edges, (), expected / expected.sum(), qs)
    if profile.get("kind") == "categorical" and profile.get("frequencies"):
        cats = tuple(profile["frequencies"])
        freqs = np.asarray([profile["frequencies"][c] for c in cats], dtype=float)
        other = max(1.0 - freqs.sum(), 0.0)
        return Reference("categorical", None, cats, np.append(freqs, other), None)
    return None


def psi(expected: np.ndarray, counts: list[int]) -> float | None:
    actual = np.asarray(counts, dtype=float)
    if actual.sum() == 0:
        return None
    a = np.clip(actual / actual.sum(), EPS, None)
    e = np.clip(expected, EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def ks(ref: Reference, sample: list[float]) -> tuple[float, float] | None:
    """One-sample KS of live values against the reference CDF interpolated from the training deciles."""
    if ref.kind != "numeric" or ref.quantiles is None or len(sample) < 5:
        return None
    from scipy import stats

    qs = np.maximum.accumulate(ref.quantiles)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.interp(x, qs, PROFILE_QUANTILES, left=0.0, right=1.0)

    result = stats.kstest(np.asarray(sample, dtype=float), cdf)
    return float(result.statistic), float(result.pvalue)


class Reservoir:
    """Algorithm R: a uniform sample of at most ``size`` values from a stream of unknown length."""

    def __init__(self, size: int = RESERVOIR, seed: int | None = None) -> None:
        self.size = size
        self.sample: list[float] = []
        self.seen = 0
        self._rng = random.Random(seed)
        self._np_rng = np.random.default_rng(seed)

    def extend(self, values: np.ndarray) -> None:
        """Add many values in one vectorised step (the same distribution as adding them one by one)."""
        n = len(values)
        if not n:
            return
        room = max(self.size - len(self.sample), 0)
        self.sample.extend(float(v) for v in values[:room])
        rest = values[room:]
        if len(rest):
            seen = self.seen + room + np.arange(1, len(rest) + 1)
            draws = np.floor(self._np_rng.random(len(rest)) * seen).astype(np.int64)
            for value, slot in zip(rest[draws < self.size], draws[draws < self.size], strict=True):
                self.sample[int(slot)] = float(value)
        self.seen += n

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.sample) < self.size:
            self.sample.append(value)
        else:
            j = self._rng.randrange(self.seen)
            if j < self.size:
                self.sample[j] = value
