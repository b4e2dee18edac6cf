"""Champion and challenger compared on live traffic: what a canary or shadow release is for.

Each version is judged on the requests it answered (a canary), or both on every request (a shadow: the challenger's
predictions are recorded under the same request ids). Quality comes from ground-truth feedback, over all the labelled
rows of a side (the newest label of a request wins): macro F1 for a classifier, two classes included (the unweighted
mean of the per-class F1 over every class the side's rows have as a label or a prediction; a class never predicted
right scores 0: sklearn's ``f1_score(average="macro", zero_division=0)``), shown with its accuracy; MAE for a
regressor (lower is better; absolute errors over all rows).

The verdict is on the difference, challenger minus champion, with a 95 % percentile bootstrap interval whose unit is
the labelled request (its rows stay together): ``BOOTSTRAP`` resamples of the requests both versions answered for a
shadow (paired: one draw moves both sides; the difference is then taken on those requests), of each side
independently for a canary. Regression is resampled the same way (its MAE is a ratio of per-request sums, so it falls
out of the same machinery; the normal interval it had is gone). The draws come from a fixed seed and the requests are
taken in request-id order, so the same data gives the same verdict. Each request becomes one line of counts (per
class true positives, false positives and false negatives; or absolute error and rows), so a resample is a weight
vector over the lines and a block of resamples one matrix product: ~1 000 labelled requests a side take a few ms.
It decides nothing before ``MIN_LABELLED`` labelled requests on each side (seen by both, for a shadow), and says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..records import Record
from .series import label_key

MIN_LABELLED = 100
#: Bootstrap resamples, and the seed of their draws (a fixed one: the same data, the same interval).
BOOTSTRAP = 2000
SEED = 20_240_516
#: Distinct request lines up to which a resample is drawn as multinomial weights over them; past it, index draws
#: in blocks of about ``_CELLS`` (resamples × requests: small blocks stay in cache, ~0.5 MB).
_GROUPS = 256
_CELLS = 65_536


@dataclass(repr=False)
class Comparison(Record):
    """The live comparison of a deployment's served version (champion) and its candidate (challenger)."""

    name: str
    mode: str
    champion: str
    challenger: str
    sides: dict[str, dict[str, Any]]
    metric: str
    verdict: str
    decided: bool = False
    difference: dict[str, float] | None = None
    agreement: float | None = None
    agreement_n: int = 0
    percent: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: when the evidence starts: the release's start, or the window's if it started earlier
    since: float | None = None
    #: what the promotion rule says now (``wait``/``promote``/``abort``: why), when a rule is set or --auto decides
    rule: str | None = None

    def __str__(self) -> str:
        head = f"{self.mode} {self.challenger} beside {self.champion}"
        if self.mode == "canary":
            head += f" ({self.percent:g} % of requests)"
        lines = [head]
        for vid, s in self.sides.items():
            q, acc = s.get("quality"), s.get("accuracy")
            quality = f"{self.metric} {q:.3f}" if q is not None else "no labels yet"
            if q is not None and acc is not None:
                quality += f", accuracy {acc:.3f}"
            if q is not None:
                quality += f" on {s['labelled']} labelled"
            err = f"{s['error_rate']:.1%}" if s["error_rate"] is not None else "n/a"
            p50 = f"{s['p50_ms']:.2f} ms" if s["p50_ms"] is not None else "n/a"
            drift = f", worst drift {s['drift']['feature']} PSI {s['drift']['psi']:.2f}" if s.get("drift") else ""
            lines.append(f"  {vid:<14} {s['predicted']:>6} predicted, {s['share']:.0%} answered, errors {err}, "
                         f"p50 {p50}, {quality}{drift}")  # fmt: skip
        if self.agreement is not None:
            lines.append(f"  agreement on live traffic: {self.agreement:.1%} of {self.agreement_n} requests")
        lines.append(f"  verdict: {self.verdict}")
        if self.rule:
            lines.append(f"  promotion rule: {self.rule}")
        return "\n".join(lines)


def compare(
    name: str, release: dict[str, Any], champion: str, reqs: pd.DataFrame, joined: pd.DataFrame, task: str | None
) -> Comparison:
    """The comparison from the window's request log and its labelled predictions (the store's frames)."""
    mode, challenger = release["mode"], release["version"]
    numbers = {champion: _number(champion), challenger: _number(challenger)}
    regression = task == "regression"
    answered = reqs[reqs["role"].isna()] if "role" in reqs else reqs
    labelled = _labelled(joined, regression)
    sides = {}
    for vid, number in numbers.items():
        mine = reqs[reqs["version"] == number]
        ok = mine[mine["status"] == 200]
        counts = labelled.get(number, (None, np.zeros((0, 0))))[1]
        sides[vid] = {
            "predicted": len(mine),
            "share": float((answered["version"] == number).mean()) if len(answered) else 0.0,
            "error_rate": float((mine["status"] != 200).mean()) if len(mine) else None,
            "p50_ms": float(np.percentile(ok["total_ms"], 50)) if len(ok) else None,
            "p95_ms": float(np.percentile(ok["total_ms"], 95)) if len(ok) else None,
            "labelled": len(counts),
            "quality": _point(counts, regression) if len(counts) else None,
        }
        if not regression:
            sides[vid]["accuracy"] = _accuracy(counts) if len(counts) else None
    metric = "MAE" if regression else "F1"
    out = Comparison(name, mode, champion, challenger, sides, metric, "", percent=float(release.get("percent") or 0))
    if mode == "shadow":
        out.agreement, out.agreement_n = _agreement(reqs, numbers[champion], numbers[challenger])
    _verdict(out, labelled, numbers, paired=mode == "shadow", regression=regression)
    return out


def _number(vid: str) -> int:
    return int(vid.rsplit("@v", 1)[1])


def _labelled(joined: pd.DataFrame, regression: bool) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per version, its labelled requests (ids, sorted) and one line of counts per request, summed over its rows:
    absolute error and rows (regression), or true positives, false positives and false negatives of each class
    (columns ``[tp_0 … tp_k-1, fp_0 …, fn_0 …]``; one class code for all versions). The newest label wins."""
    if joined.empty:
        return {}
    joined = joined.sort_values("labelled").drop_duplicates(["request_id", "version"], keep="last")
    joined = joined.sort_values(["version", "request_id"], kind="stable")
    keys, owner, preds, truths, errors = [], [], [], [], []
    for rid, version, pred, label in zip(
        joined["request_id"], joined["version"], joined["prediction"], joined["label"], strict=True
    ):
        if pred is None or label is None:
            continue
        p, t = json.loads(pred), json.loads(label)
        t = t if isinstance(t, list) else [t]
        if len(t) != len(p) or not p:
            continue
        if regression:
            err = np.abs(np.asarray(p, dtype=float) - np.asarray(t, dtype=float))
            errors.append((float(err.sum()), err.size))
        else:
            owner.extend([len(keys)] * len(p))
            preds.extend(label_key(v) for v in p)
            truths.extend(label_key(v) for v in t)
        keys.append((rid, int(version)))
    if not keys:
        return {}
    counts = (
        np.asarray(errors, dtype=float) if regression else _class_counts(np.asarray(owner), preds, truths, len(keys))
    )
    ids, versions = np.array([k[0] for k in keys], dtype=object), np.array([k[1] for k in keys])
    return {int(v): (ids[versions == v], counts[versions == v]) for v in np.unique(versions)}


def _class_counts(owner: np.ndarray, preds: list[str], truths: list[str], n: int) -> np.ndarray:
    """(n, 3k) per-request tp/fp/fn counts of the k classes, from each row's request, prediction and label."""
    _, codes = np.unique(np.asarray(preds + truths, dtype=str), return_inverse=True)
    k = int(codes.max()) + 1
    p, t, base = codes[: len(preds)], codes[len(preds) :], owner * 3 * k
    right = p == t
    cells = np.concatenate([base[right] + t[right], base[~right] + k + p[~right], base[~right] + 2 * k + t[~right]])
    return np.bincount(cells, minlength=n * 3 * k).reshape(n, 3 * k).astype(float)


def _statistic(counts: np.ndarray, regression: bool) -> Callable[[np.ndarray], np.ndarray]:
    """The verdict metric of summed counts, one resample per line: MAE, or macro F1 over the classes ``counts`` (the
    full data) has as a label or a prediction (sklearn's label set); a resample that lost one scores it 0."""
    if regression:
        return lambda totals: totals[:, 0] / totals[:, 1]
    k = counts.shape[1] // 3
    present = counts.sum(axis=0).reshape(3, k).sum(axis=0) > 0

    def macro_f1(totals: np.ndarray) -> np.ndarray:
        tp, fp, fn = np.moveaxis(totals.reshape(len(totals), 3, k)[:, :, present], 1, 0)
        denominator = 2 * tp + fp + fn
        return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0).mean(axis=1)

    return macro_f1


def _point(counts: np.ndarray, regression: bool) -> float:
    return float(_statistic(counts, regression)(counts.sum(axis=0, keepdims=True))[0])


def _accuracy(counts: np.ndarray) -> float:
    """Rows predicted right over all rows: each row is a true positive of its label or a false positive."""
    tp, fp, _ = counts.sum(axis=0).reshape(3, -1).sum(axis=1)
    return float(tp / (tp + fp))


def _resampled(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(BOOTSTRAP, columns) sums of ``counts`` over bootstrap resamples of its lines (requests), n draws with
    replacement each. Identical lines are grouped: a classifier's requests are mostly one row, so a few (prediction,
    label) pairs, and a resample is then multinomial weights over the groups. Otherwise (regression: every line
    differs) the draws are index arrays counted into weights, a block of resamples at a time."""
    n = len(counts)
    lines, size = np.unique(counts, axis=0, return_counts=True)
    if len(lines) <= _GROUPS:
        return rng.multinomial(n, size / n, size=BOOTSTRAP) @ lines
    step = max(1, _CELLS // n)
    out = np.empty((BOOTSTRAP, counts.shape[1]))
    for start in range(0, BOOTSTRAP, step):
        b = min(step, BOOTSTRAP - start)
        draws = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        out[start : start + b] = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n) @ counts
    return out


def _agreement(reqs: pd.DataFrame, champion: int, challenger: int) -> tuple[float | None, int]:
    """Share of requests both versions predicted the same for (a shadow sees every request)."""
    ok = reqs[(reqs["status"] == 200) & reqs["prediction"].notna()]
    a = ok[ok["version"] == champion].drop_duplicates("request_id").set_index("request_id")["prediction"]
    b = ok[ok["version"] == challenger].drop_duplicates("request_id").set_index("request_id")["prediction"]
    both = a.index.intersection(b.index)
    if not len(both):
        return None, 0
    return float((a.loc[both] == b.loc[both]).mean()), len(both)


def _verdict(
    out: Comparison, labelled: dict[int, tuple[np.ndarray, np.ndarray]], numbers: dict[str, int], *, paired: bool,
    regression: bool,
) -> None:  # fmt: skip
    empty = (np.array([], dtype=object), np.zeros((0, 0)))
    (ids_a, a), (ids_b, b) = (labelled.get(numbers[v], empty) for v in (out.champion, out.challenger))
    rng = np.random.default_rng(SEED)
    if paired:
        _, in_a, in_b = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
        a, b = a[in_a], b[in_b]
        if len(a) < MIN_LABELLED:
            out.verdict = f"not enough evidence yet: {len(a)} labelled requests seen by both, {MIN_LABELLED} needed"
            return
        totals = _resampled(np.hstack([a, b]), rng)  # one draw of requests for both sides
        boot_a, boot_b = totals[:, : a.shape[1]], totals[:, a.shape[1] :]
        count = f"{len(a)} labelled requests"
    else:
        if min(len(a), len(b)) < MIN_LABELLED:
            out.verdict = (
                f"not enough evidence yet: {len(b)} labelled requests on {out.challenger} and {len(a)} on "
                f"{out.champion}, {MIN_LABELLED} needed on each"
            )
            return
        boot_a, boot_b = _resampled(a, rng), _resampled(b, rng)
        count = f"{len(b)} + {len(a)} labelled requests"
    stat_a, stat_b = _statistic(a, regression), _statistic(b, regression)
    delta = _point(b, regression) - _point(a, regression)
    low, high = (float(x) for x in np.percentile(stat_b(boot_b) - stat_a(boot_a), [2.5, 97.5]))
    out.difference = {"delta": delta, "low": low, "high": high}
    interval = f"95 % interval {low:+.3f} to {high:+.3f}"
    if low <= 0 <= high:
        out.verdict = f"no clear difference in {out.metric} over {count} ({interval}): keep watching or decide"
        return
    better = (delta < 0) if regression else (delta > 0)
    out.decided = True
    winner = out.challenger if better else out.champion
    out.verdict = f"{winner} better on {out.metric} by {abs(delta):.3f} over {count} ({interval})"
