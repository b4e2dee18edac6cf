"""The promotion rule: what the live comparison of a canary or shadow says should happen to the candidate.

One judgement serves two callers, so they can never disagree: ``%mm_promote`` checks it before it promotes (and
refuses with its reason), and the automatic mode's steward (:mod:`.steward`) acts on it when it decides.

The rule, from the model's monitoring rules: with ``promote_min_labelled`` = N, the candidate (challenger) needs N
labelled requests on each side since the release started, and a live quality (the comparison's metric: F1 or
accuracy for a classifier, MAE for a regressor) no worse than the served version's (champion's) by more than
``promote_margin``. A candidate that answers with errors more often than the champion by more than the
``error_rate`` rule, over at least ``min_requests`` requests a side and significantly (:func:`_error_gap`), is
judged worse at once: a broken canary is not kept waiting for labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

#: The evidence the automatic mode waits for when the model sets no promotion rule: the comparison's own minimum.
AUTO_MIN_LABELLED = 100
#: How far (in standard errors) the candidate's error rate must exceed the champion's to be judged worse at once.
Z_ERRORS = 2.58

Action = Literal["wait", "promote", "abort"]


@dataclass(frozen=True)
class Judgement:
    """What the rule says (``wait`` for more evidence, ``promote`` or ``abort``) and why, in one line."""

    action: Action
    why: str


def judge(comparison: Any, rules: dict[str, Any], need: int) -> Judgement:
    """The rule applied to ``comparison`` (a :class:`~..monitoring.compare.Comparison`), needing ``need`` labelled
    requests per side (``rules`` gives the margin and the error-rate rule)."""
    champ, chall = comparison.sides[comparison.champion], comparison.sides[comparison.challenger]
    errors = _error_gap(champ, chall, rules)
    if errors is not None:
        return Judgement("abort", errors.format(chall=comparison.challenger, champ=comparison.champion))
    margin = float(rules.get("promote_margin") or 0.0)
    if min(chall["labelled"], champ["labelled"]) < need:
        return Judgement(
            "wait",
            f"{chall['labelled']} labelled requests on {comparison.challenger} and {champ['labelled']} on "
            f"{comparison.champion}, the rule needs {need} on each",
        )
    a, b, metric = champ["quality"], chall["quality"], comparison.metric
    worse = (b - a > margin) if metric == "MAE" else (a - b > margin)
    over = f"over {chall['labelled']} + {champ['labelled']} labelled requests"
    if worse:
        return Judgement(
            "abort",
            f"{comparison.challenger}'s live {metric} {b:.3f} is worse than {comparison.champion}'s {a:.3f} by more "
            f"than {margin:g} ({over})",
        )
    return Judgement(
        "promote",
        f"{comparison.challenger}'s live {metric} {b:.3f} against {comparison.champion}'s {a:.3f}, within the "
        f"margin of {margin:g} or better ({over})",
    )


def _error_gap(champ: dict[str, Any], chall: dict[str, Any], rules: dict[str, Any]) -> str | None:
    """A one-line reason (with ``{chall}``/``{champ}`` to fill) when the candidate errs clearly more, else None.

    Clearly: more than the ``error_rate`` rule apart, over at least ``min_requests`` requests a side, *and*
    significant (one-sided two-proportion z-test, z > 2.58, p < 0.005). A client sending a few malformed requests
    is refused by both versions alike; on 20 requests that is noise, and an abort retires the candidate for good."""
    least = max(int(rules.get("min_requests") or 0), 1)
    allowed = float(rules.get("error_rate") or 0.0)
    ea, eb = champ.get("error_rate"), chall.get("error_rate")
    na, nb = int(champ.get("predicted") or 0), int(chall.get("predicted") or 0)
    if eb is None or nb < least or na < least:
        return None
    ea = ea or 0.0
    pooled = (ea * na + eb * nb) / (na + nb)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    significant = spread == 0 or (eb - ea) / spread > Z_ERRORS
    if eb - ea > allowed and significant:
        return (
            f"{{chall}} answered {eb:.1%} of its {chall['predicted']} requests with an error, {{champ}} "
            f"{(ea or 0.0):.1%}: more than the error_rate rule's {allowed:g} apart"
        )
    return None
