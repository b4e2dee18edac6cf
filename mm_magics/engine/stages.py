"""The lifecycle's pure parts: the stage graph, gate expressions and the stage record's schema.

No git, no workspace: the registry writes a new version's first stage record and the lifecycle appends transitions,
both through :func:`new_stage_doc` and :func:`transition_entry`, so the record has one schema. The graph is
design -> train -> evaluate -> deploy -> maintain -> retire, plus the shortcuts users expect (any stage may retire).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from .errors import GateError, LifecycleConfigError
from .records import GateResult

STAGES = ("design", "train", "evaluate", "deploy", "maintain", "retire")
EDGES = (
    ("design", "train"),
    ("train", "evaluate"),
    ("evaluate", "deploy"),
    ("deploy", "maintain"),
    ("maintain", "retire"),
    ("design", "retire"),
    ("train", "retire"),
    ("evaluate", "retire"),
    ("deploy", "retire"),
)
#: Stages in which a version counts as "the one in production" for the no-regression gate.
SERVING = ("deploy", "maintain")
#: Metrics where smaller is better; every other metric is taken as larger-is-better.
LOWER_IS_BETTER = re.compile(r"(^|_)(mae|mse|rmse|loss|error|log_loss|latency|brier)($|_)")
#: Which metric stands for "quality" when no threshold names one.
PRIMARY_METRICS = ("accuracy", "f1_macro", "f1", "r2", "rmse", "mae")

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_GATE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def check(self, metrics: dict[str, Any]) -> GateResult:
        actual = metrics.get(self.metric)
        if not isinstance(actual, (int, float)):
            have = ", ".join(k for k, v in metrics.items() if isinstance(v, (int, float))) or "none"
            return GateResult(str(self), False, f"metric {self.metric!r} was not recorded (recorded: {have})")
        ok = _OPS[self.op](float(actual), self.value)
        if ok:
            return GateResult(str(self), True, f"{self.metric} {actual:.4g} {self.op} {self.value:g}")
        return GateResult(
            str(self), False, f"{self.metric} {actual:.4g} fails {self} (off by {abs(actual - self.value):.4g})"
        )


def parse_gate(expr: str) -> Threshold:
    """Parse ``"accuracy >= 0.9"``; the error says what a gate looks like."""
    m = _GATE.match(expr) if isinstance(expr, str) else None
    if not m:
        raise GateError(
            f"bad gate expression {expr!r}: write METRIC OP NUMBER with OP one of >=, <=, >, <, ==, != "
            '(e.g. "accuracy >= 0.9")'
        )
    value = float(m.group(3))
    if not math.isfinite(value):
        raise GateError(f"bad gate expression {expr!r}: the threshold must be a finite number (e.g. 0.9)")
    return Threshold(m.group(1), m.group(2), value)


def lower_is_better(metric: str) -> bool:
    return bool(LOWER_IS_BETTER.search(metric.lower()))


def build_graph(config: dict[str, Any]) -> nx.DiGraph:
    """The default stage DAG plus the workspace's extra stages and edges, refused if it would have a cycle."""
    graph = nx.DiGraph()
    graph.add_nodes_from(STAGES)
    graph.add_edges_from(EDGES)
    extra = config.get("lifecycle", {}) or {}
    graph.add_nodes_from(extra.get("stages", []))
    for edge in extra.get("edges", []):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2):
            raise LifecycleConfigError(f"lifecycle edge {edge!r} in mm.json is not a [from, to] pair: fix mm.json")
        graph.add_edge(str(edge[0]), str(edge[1]))
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(a for a, _ in nx.find_cycle(graph))
        raise LifecycleConfigError(
            f"lifecycle stages would form a cycle ({cycle}): remove an edge; a retrain makes a new version instead"
        )
    return graph


def entry_path(has_metrics: bool) -> list[str]:
    """The walk a freshly committed version has already made: trained, and evaluated if it has metrics."""
    return ["design", "train", "evaluate"] if has_metrics else ["design", "train"]


def transition_entry(
    *,
    from_stage: str | None,
    path: list[str],
    actor: str,
    when: str,
    reason: str,
    forced: bool = False,
    gates: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One entry of a stage record's history (the audit trail of a version's moves)."""
    return {
        "from": from_stage,
        "to": path[-1],
        "path": path,
        "actor": actor,
        "time": when,
        "reason": reason,
        "forced": forced,
        "gates": gates or [],
    }


def new_stage_doc(path: list[str], *, actor: str, when: str, reason: str) -> dict[str, Any]:
    """The stage record a version starts with: it has walked ``path`` and stands at its end."""
    entry = transition_entry(from_stage=None, path=path, actor=actor, when=when, reason=reason)
    return {"stage": path[-1], "since": when, "history": [entry]}


def apply_transition(doc: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The stage record after ``entry`` (a :func:`transition_entry`) moved the version."""
    doc.update(stage=entry["to"], since=entry["time"])
    doc.setdefault("history", []).append(entry)
    return doc
