"""Champion and challenger compared on live traffic: what a canary or shadow release is for.

Each version is judged on the requests it answered (a canary), or both on every request (a shadow: the challenger's
predictions are recorded under the same request ids). Quality comes from ground-truth feedback, one score per
labelled request: correct (classification) or absolute error (regression, lower is better). The verdict compares
the two with a 95 % interval of the difference: paired over the same requests for a shadow, two independent samples
for a canary; it decides nothing before ``MIN_LABELLED`` labelled requests on each side, and says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..records import Record
from .series import label_key

MIN_LABELLED = 100
Z95 = 1.959964


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

    def __str__(self) -> str:
        head = f"{self.mode} {self.challenger} beside {self.champion}"
        if self.mode == "canary":
            head += f" ({self.percent:g} % of requests)"
        lines = [head]
        for vid, s in self.sides.items():
            q = s.get("quality")
            quality = f"{self.metric} {q:.3f} on {s['labelled']} labelled" if q is not None else "no labels yet"
            err = f"{s['error_rate']:.1%}" if s["error_rate"] is not None else "n/a"
            p50 = f"{s['p50_ms']:.2f} ms" if s["p50_ms"] is not None else "n/a"
            lines.append(f"  {vid:<14} {s['predicted']:>6} predicted, {s['share']:.0%} answered, errors {err}, "
                         f"p50 {p50}, {quality}")  # fmt: skip
        if self.agreement is not None:
            lines.append(f"  agreement on live traffic: {self.agreement:.1%} of {self.agreement_n} requests")
        lines.append(f"  verdict: {self.verdict}")
        return "\n".join(lines)


def compare(
    name: str, release: dict[str, Any], champion: str, reqs: pd.DataFrame, joined: pd.DataFrame, task: str | None
) -> Comparison:
    """The comparison from the window's request log and its labelled predictions (the store's frames)."""
    mode, challenger = release["mode"], release["version"]
    numbers = {champion: _number(champion), challenger: _number(challenger)}
    regression = task == "regression"
    metric = "MAE" if regression else "accuracy"
    answered = reqs[reqs["role"].isna()] if "role" in reqs else reqs
    scores = _scores(joined, regression)
    sides = {}
    for vid, number in numbers.items():
        mine = reqs[reqs["version"] == number]
        ok = mine[mine["status"] == 200]
        side_scores = scores[scores["version"] == number] if not scores.empty else scores
        sides[vid] = {
            "predicted": len(mine),
            "share": float((answered["version"] == number).mean()) if len(answered) else 0.0,
            "error_rate": float((mine["status"] != 200).mean()) if len(mine) else None,
            "p50_ms": float(np.percentile(ok["total_ms"], 50)) if len(ok) else None,
            "p95_ms": float(np.percentile(ok["total_ms"], 95)) if len(ok) else None,
            "labelled": len(side_scores),
            "quality": float(side_scores["score"].mean()) if len(side_scores) else None,
        }
    out = Comparison(name, mode, champion, challenger, sides, metric, "", percent=float(release.get("percent") or 0))
    if mode == "shadow":
        out.agreement, out.agreement_n = _agreement(reqs, numbers[champion], numbers[challenger])
    _verdict(out, scores, numbers, paired=mode == "shadow", lower_better=regression)
    return out


def _number(vid: str) -> int:
    return int(vid.rsplit("@v", 1)[1])


def _scores(joined: pd.DataFrame, regression: bool) -> pd.DataFrame:
    """One score per labelled request and version: the share of its rows predicted right, or their mean absolute
    error. The newest label of a request wins."""
    rows = []
    if joined.empty:
        return pd.DataFrame(columns=["request_id", "version", "score"])
    joined = joined.sort_values("labelled").drop_duplicates(["request_id", "version"], keep="last")
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
            score = float(np.mean(np.abs(np.asarray(p, dtype=float) - np.asarray(t, dtype=float))))
        else:
            score = float(np.mean([label_key(a) == label_key(b) for a, b in zip(p, t, strict=True)]))
        rows.append((rid, int(version), score))
    return pd.DataFrame(rows, columns=["request_id", "version", "score"])


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
    out: Comparison, scores: pd.DataFrame, numbers: dict[str, int], *, paired: bool, lower_better: bool
) -> None:
    champ, chall = numbers[out.champion], numbers[out.challenger]
    a = scores[scores["version"] == champ].set_index("request_id")["score"] if len(scores) else pd.Series(dtype=float)
    b = scores[scores["version"] == chall].set_index("request_id")["score"] if len(scores) else pd.Series(dtype=float)
    if paired:
        both = a.index.intersection(b.index)
        diffs = (b.loc[both] - a.loc[both]).to_numpy()
        n = len(diffs)
        if n < MIN_LABELLED:
            out.verdict = f"not enough evidence yet: {n} labelled requests seen by both, {MIN_LABELLED} needed"
            return
        delta = float(diffs.mean())
        se = float(diffs.std(ddof=1) / math.sqrt(n))
        count = f"{n} labelled requests"
    else:
        n_a, n_b = len(a), len(b)
        if min(n_a, n_b) < MIN_LABELLED:
            out.verdict = (
                f"not enough evidence yet: {n_b} labelled requests on {out.challenger} and {n_a} on {out.champion}, "
                f"{MIN_LABELLED} needed on each"
            )
            return
        delta = float(b.mean() - a.mean())
        se = math.sqrt(float(a.var(ddof=1)) / n_a + float(b.var(ddof=1)) / n_b)
        count = f"{n_b} + {n_a} labelled requests"
    low, high = delta - Z95 * se, delta + Z95 * se
    out.difference = {"delta": delta, "low": low, "high": high}
    interval = f"95 % interval {low:+.3f} to {high:+.3f}"
    if low <= 0 <= high:
        out.verdict = f"no clear difference in {out.metric} over {count} ({interval}): keep watching or decide"
        return
    better = (delta < 0) if lower_better else (delta > 0)
    out.decided = True
    winner = out.challenger if better else out.champion
    out.verdict = f"{winner} better on {out.metric} by {abs(delta):.3f} over {count} ({interval})"
