"""The lifecycle of each version: a networkx DAG of stages, transitions checked against gates, audited in git.

design -> train -> evaluate -> deploy -> maintain -> retire, plus the shortcuts users expect (any stage may retire).
There are no backward edges: a retrain never moves a version back, it makes a new version (a child in the version
DAG) that starts its own walk. A workspace may add stages and edges in ``mm.json``; the graph must stay acyclic.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx

from . import layout
from .errors import GateError, LifecycleConfigError, TransitionError
from .records import GateResult, Transition
from .registry import Change, Snapshot, _utcnow, dump_json, trailers
from .specs import check_name

if TYPE_CHECKING:
    from .records import Version
    from .workspace import Workspace

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


class Lifecycle:
    """Stages, gates and transitions of every version in a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    @property
    def registry(self) -> Any:
        return self.ws.registry

    @property
    def graph(self) -> nx.DiGraph:
        return build_graph(self.ws.config)

    def entry_path(self, has_metrics: bool) -> list[str]:
        """The walk a freshly committed version has already made: trained, and evaluated if it has metrics."""
        return ["design", "train", "evaluate"] if has_metrics else ["design", "train"]

    # -- configuration ---------------------------------------------------------------------------------------------
    def add_stage(self, stage: str, after: str, before: str | None = None, message: str = "") -> nx.DiGraph:
        """Add a workspace stage (e.g. ``shadow`` between evaluate and deploy); checked acyclic before it lands."""
        check_name(stage)

        def mutate(doc: dict[str, Any]) -> None:
            lc = doc.setdefault("lifecycle", {"stages": [], "edges": []})
            lc.setdefault("stages", [])
            lc.setdefault("edges", [])
            if stage not in lc["stages"] and stage not in STAGES:
                lc["stages"].append(stage)
            lc["edges"].append([after, stage])
            if before:
                lc["edges"].append([stage, before])
            graph = build_graph(doc)
            for s in (after, before):
                if s and s not in graph:
                    raise LifecycleConfigError(f"unknown stage {s!r}: known stages are {', '.join(graph)}")

        self.registry.update_config(mutate, message or f"Add lifecycle stage {stage}")
        return self.graph

    def set_gates(
        self, name: str, exprs: list[str], *, stage: str = "deploy", replace: bool = False, message: str = ""
    ) -> list[dict[str, str]]:
        """Set the thresholds a version of ``name`` must meet to enter ``stage`` (recorded as a commit)."""
        parsed = [parse_gate(e) for e in exprs]
        if stage not in self.graph:
            raise TransitionError(f"unknown stage {stage!r}: known stages are {', '.join(self.graph)}")

        def mutate(mdoc: dict[str, Any]) -> None:
            gates = (
                []
                if replace
                else [
                    g
                    for g in mdoc.get("gates", [])
                    if g.get("stage") != stage or parse_gate(g["expr"]).metric not in {p.metric for p in parsed}
                ]
            )
            gates += [{"expr": str(p), "stage": stage} for p in parsed]
            mdoc["gates"] = gates

        text = ", ".join(str(p) for p in parsed) or "none"
        self.registry.update_model(name, mutate, message or f"Set {stage} gates of {name}: {text}", "gate")
        return self.gates(name)

    def gates(self, name: str) -> list[dict[str, str]]:
        return list(self.registry.model_doc(name).get("gates", []))

    # -- queries ---------------------------------------------------------------------------------------------------
    def stage(self, spec: str) -> str:
        return self.registry.get(spec).stage

    def counts(self, name: str) -> dict[str, int]:
        """How many versions of ``name`` sit in each stage (every stage listed, zeros included)."""
        self.registry.resolve(name)
        found = self.registry.index.stage_counts(name)
        return {s: found.get(s, 0) for s in nx.topological_sort(self.graph)}

    def history(self, spec: str) -> list[Transition]:
        version = self.registry.get(spec)
        doc = self.registry.index.stage_doc(version.name, version.number) or {"history": []}
        return [_transition(version.id, h) for h in doc["history"]]

    def deployed(self, name: str, exclude: int | None = None) -> Version | None:
        """The version now in production: the ``production`` alias if it is serving, else the newest serving."""
        reg = self.registry
        reg.resolve(name)
        serving = [n for n in reg.index.in_stages(name, SERVING) if n != exclude]
        if not serving:
            return None
        prod = reg.index.model_doc(name).get("aliases", {}).get("production")
        number = prod if prod in serving else serving[0]
        return reg.get(f"{name}@v{number}")

    # -- gates and transitions -------------------------------------------------------------------------------------
    def plan(self, spec: str, to: str) -> tuple[Version, list[str]]:
        version = self.registry.get(spec)
        graph = self.graph
        if to not in graph:
            raise TransitionError(f"unknown stage {to!r}: stages are {', '.join(nx.topological_sort(graph))}")
        current = version.stage
        if current is None or current not in graph:
            raise TransitionError(
                f"{version.id} is in stage {current!r}, which the lifecycle graph does not have: run `mm fsck` "
                f"(its record is {layout.stage_file(version.name, version.number)})"
            )
        if current == to:
            raise TransitionError(f"{version.id} is already in stage {to!r}: nothing to do")
        if not nx.has_path(graph, current, to):
            onward = ", ".join(graph.successors(current)) or "none (final stage)"
            raise TransitionError(
                f"{version.id} cannot go from {current} to {to} (next stages: {onward}); stages never move "
                f"backwards: retrain with %%mm_train {version.name} --from {version.id} to make a new version"
            )
        return version, nx.shortest_path(graph, current, to)

    def check(self, spec: str, to: str) -> list[GateResult]:
        """Dry run: the gates a transition would pass or fail, without recording anything."""
        version, path = self.plan(spec, to)
        return self._gates(version, path[1:])

    def _gates(self, version: Version, entered: list[str]) -> list[GateResult]:
        results: list[GateResult] = []
        model_gates = self.registry.model_doc(version.name).get("gates", [])
        for stage in entered:
            if stage == "evaluate":
                ok = bool(version.metrics)
                results.append(
                    GateResult(
                        "has metrics",
                        ok,
                        "metrics recorded"
                        if ok
                        else "no evaluation metrics recorded: evaluate the "
                        "model (%%mm_train records them) and commit it with metrics",
                    )
                )
            for gate in model_gates:
                if gate.get("stage", "deploy") == stage:
                    results.append(parse_gate(gate["expr"]).check(version.metrics))
            if stage == "deploy":
                results.extend(self._no_regression(version, model_gates))
                results.append(self._artifact_intact(version))
        return results

    def _artifact_intact(self, version: Version) -> GateResult:
        """A version enters deploy only if its artifact is there and matches its sha256 (it must be servable)."""
        problem = self.registry.artifact_problem(version)
        if problem:
            return GateResult("artifact intact", False, problem)
        return GateResult("artifact intact", True, f"sha256 {version.sha256[:12]} verified")

    def _no_regression(self, version: Version, model_gates: list[dict[str, str]]) -> list[GateResult]:
        current = self.deployed(version.name, exclude=version.number)
        if current is None:
            return []
        metrics = [parse_gate(g["expr"]).metric for g in model_gates if g.get("stage", "deploy") == "deploy"]
        if not metrics:
            metrics = [m for m in PRIMARY_METRICS if m in version.metrics and m in current.metrics][:1]
        out = []
        for metric in dict.fromkeys(metrics):
            new, old = version.metrics.get(metric), current.metrics.get(metric)
            if not isinstance(new, (int, float)) or not isinstance(old, (int, float)):
                continue
            worse = (new - old) if lower_is_better(metric) else (old - new)
            name = f"not worse than {current.id} on {metric}"
            if worse > 1e-12:
                out.append(
                    GateResult(
                        name,
                        False,
                        f"{metric} {new:.4g} is worse than deployed {current.id}'s {old:.4g} by {worse:.4g}",
                    )
                )
            else:
                out.append(GateResult(name, True, f"{metric} {new:.4g} vs deployed {current.id}'s {old:.4g}"))
        return out

    def preflight(
        self, spec: str, to: str, reason: str = "", *, force: bool = False
    ) -> tuple[Version, list[str], list[GateResult]]:
        """Raise exactly as :meth:`transition` would, without recording anything.

        For callers with slow work between decision and record: a deployment starts its server only once the move
        is known to be allowed, and records the move only once the server answers, so a server that fails to start
        leaves the version where it was."""
        version, path = self.plan(spec, to)
        results = self._gates(version, path[1:])
        failed = [r for r in results if not r.passed]
        if failed and not force:
            detail = "; ".join(f"{r.gate}: {r.detail}" for r in failed)
            raise TransitionError(
                f"{version.id} cannot enter {to}: {detail}. Fix the model, or force it with a reason "
                f"(%mm_stage {version.id} {to} --force -m WHY)"
            )
        if force and not reason.strip():
            raise TransitionError(f"forcing {version.id} into {to} needs a reason: pass -m WHY (it is audited)")
        return version, path, results

    def transition(self, spec: str, to: str, reason: str = "", *, force: bool = False) -> Transition:
        """Move a version to stage ``to`` along the graph, passing every gate of every stage entered.

        A refused gate raises :class:`TransitionError` naming the gate and the gap; ``force=True`` overrides gates
        (never the graph) and needs a reason, which the audit log keeps.
        """
        version, path, results = self.preflight(spec, to, reason, force=force)
        failed = [r for r in results if not r.passed]
        actor = self.ws.actor
        reason = reason or f"Move {version.id} to {to}"
        name, number, current = version.name, version.number, version.stage

        def build(snap: Snapshot) -> Change:
            sdoc = snap.json(layout.stage_file(name, number))
            if sdoc is None or sdoc["stage"] != current:
                now = sdoc["stage"] if sdoc else "unknown"
                raise TransitionError(f"{version.id} moved to {now} meanwhile (another session): check and retry")
            when = _utcnow().isoformat(timespec="microseconds")
            record = {
                "from": current,
                "to": to,
                "path": path,
                "actor": actor,
                "time": when,
                "reason": reason,
                "forced": bool(failed and force),
                "gates": [r.__dict__ for r in results],
            }
            sdoc.update(stage=to, since=when)
            sdoc.setdefault("history", []).append(record)
            msg = (
                f"{reason}\n\n"
                + trailers(
                    action="transition",
                    model=name,
                    version=number,
                    **{"from": current},
                    to=to,
                    path=" -> ".join(path),
                    actor=actor,
                    forced="yes" if record["forced"] else None,
                )
                + "\n"
            )
            return Change({layout.stage_file(name, number): dump_json(sdoc)}, msg, result=record)

        record, commit = self.registry._transact(build)
        out = _transition(version.id, json.loads(json.dumps(record)))
        out.commit = commit
        return out


def _transition(vid: str, h: dict[str, Any]) -> Transition:
    return Transition(
        version=vid,
        from_stage=h.get("from"),
        to_stage=h["to"],
        path=list(h.get("path") or [h["to"]]),
        actor=h.get("actor", ""),
        time=h.get("time", ""),
        reason=h.get("reason", ""),
        forced=bool(h.get("forced")),
        gates=[GateResult(**g) for g in h.get("gates", [])],
    )
