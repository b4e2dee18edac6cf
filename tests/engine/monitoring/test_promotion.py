"""The promotion rule on comparisons that need no server: wait, promote or abort, on F1 and MAE, and the error-rate
check that aborts a broken candidate without waiting for labels but not a client's few malformed requests."""

from __future__ import annotations

import pytest

from mm_magics.engine.monitoring.compare import Comparison
from mm_magics.engine.monitoring.promotion import judge


def _comparison(champ: dict, chall: dict, metric: str = "F1") -> Comparison:
    base = {"predicted": 200, "share": 0.5, "error_rate": 0.0, "p50_ms": 1.0, "p95_ms": 2.0}
    sides = {"m@v1": {**base, **champ}, "m@v2": {**base, **chall}}
    return Comparison("m", "canary", "m@v1", "m@v2", sides, metric, "")


RULES = {"promote_margin": 0.01, "error_rate": 0.05, "min_requests": 20}


@pytest.mark.parametrize(
    ("champ", "chall", "metric", "action", "why"),
    [
        ({"labelled": 120, "quality": 0.90}, {"labelled": 99, "quality": 0.99}, "F1", "wait", "99 labelled requests"),
        ({"labelled": 120, "quality": 0.90}, {"labelled": 100, "quality": 0.895}, "F1", "promote", "within the margin"),
        ({"labelled": 120, "quality": 0.90}, {"labelled": 100, "quality": 0.88}, "F1", "abort", "is worse than"),
        ({"labelled": 120, "quality": 2.0}, {"labelled": 100, "quality": 2.5}, "MAE", "abort", "live MAE 2.500"),
        ({"labelled": 120, "quality": 2.0}, {"labelled": 100, "quality": 1.5}, "MAE", "promote", "live MAE 1.500"),
        (
            {"labelled": 0, "quality": None, "error_rate": 0.01},
            {"labelled": 0, "quality": None, "error_rate": 0.2},
            "F1",
            "abort",
            "m@v2 answered 20.0% of its 200 requests with an error, m@v1 1.0%",
        ),
        # a client's few malformed requests, refused by both alike: noise, not a broken candidate
        (
            {"labelled": 0, "quality": None, "error_rate": 0.125, "predicted": 16},
            {"labelled": 0, "quality": None, "error_rate": 0.2, "predicted": 20},
            "F1",
            "wait",
            "0 labelled requests",
        ),
        (
            {"labelled": 0, "quality": None, "error_rate": 0.1, "predicted": 20},
            {"labelled": 0, "quality": None, "error_rate": 0.3, "predicted": 20},
            "F1",
            "wait",
            "0 labelled requests",
        ),
    ],
)
def test_the_rule_waits_promotes_or_aborts(champ, chall, metric, action, why):
    verdict = judge(_comparison(champ, chall, metric), RULES, 100)
    assert verdict.action == action and why in verdict.why, verdict
