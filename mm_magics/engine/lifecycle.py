"""The lifecycle of each version: a networkx DAG of stages, transitions checked against gates, audited in git.

design -> train -> evaluate -> deploy -> maintain -> retire, plus the shortcuts users expect (any stage may retire).
There are no backward edges: a retrain never moves a version back, it makes a new version (a child in the version
DAG) that starts its own walk. A workspace may add stages and edges in ``mm.json``; the graph must stay acyclic.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import networkx as nx

from . import layout
from .clock import now_iso
from .errors import Fix, LifecycleConfigError, TransitionError
from .ledger import Change, TreeView, dump_json, message
from .records import GateResult, LifecyclePicture, Transition
from .specs import check_name, parse_spec
from .stages import (  # re-exported: the lifecycle's vocabulary, importable from here as before
    EDGES,
    LOWER_IS_BETTER,
    PRIMARY_METRICS,
    SERVING,
    STAGES,
    Threshold,
    apply_transition,
    build_graph,
    entry_path,
    lower_is_better,
    parse_gate,
    transition_entry,
)

if TYPE_CHECKING:
    from .records import Version
    from .workspace import Workspace

__all__ = [
    "EDGES",
    "LOWER_IS_BETTER",
    "PRIMARY_METRICS",
    "SERVING",
    "STAGES",
    "Lifecycle",
    "Threshold",
    "build_graph",
    "entry_path",
    "lower_is_better",
    "parse_gate",
]


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

    def in_stage(self, name: str, stage: str, limit: int = 200) -> list[str]:
        """The versions of ``name`` in ``stage``, newest first (at most ``limit``): what a click on a stage of the
        lifecycle graph lists."""
        self.registry.get(name)  # an unknown model is an error, not an empty list
        return [f"{name}@v{n}" for n in self.registry.index.in_stages(name, (stage,))[:limit]]

    def picture(self, spec: str) -> LifecyclePicture:
        """The stage DAG of a model (``NAME``) laid out for drawing, with counts and gates; for a version
        (``NAME@vN``, ``NAME@alias``) also its position and the verdict on each next stage (a dry run: nothing is
        recorded). One engine call for every face."""
        parsed = parse_spec(spec)
        name = parsed.name
        version = spec if parsed.number is not None or parsed.alias is not None else None
        graph = self.graph
        counts = self.counts(name)
        stages = [
            {"name": stage, "layer": layer, "row": row, "count": counts.get(stage, 0)}
            for layer, generation in enumerate(nx.topological_generations(graph))
            for row, stage in enumerate(sorted(generation))
        ]
        model_gates = self.gates(name)
        builtin = {"evaluate": ["has metrics"], "deploy": ["not worse than deployed", "artifact intact"]}
        edges = [
            {
                "from": a,
                "to": b,
                "gates": builtin.get(b, []) + [g["expr"] for g in model_gates if g.get("stage", "deploy") == b],
            }
            for a, b in graph.edges
        ]
        out = LifecyclePicture(model=name, stages=stages, edges=edges)
        if version is not None:
            v = self.registry.get(version)
            out.version, out.stage = v.id, v.stage
            history = self.history(v.id)
            out.path = list(dict.fromkeys(stage for t in history for stage in t.path)) or [v.stage or ""]
            for nxt in sorted(graph.successors(v.stage)) if v.stage in graph else []:
                try:
                    refused = [{"gate": r.gate, "detail": r.detail} for r in self.check(v.id, nxt) if not r.passed]
                    out.moves.append({"to": nxt, "allowed": not refused, "refused": refused})
                except TransitionError as exc:
                    out.moves.append({"to": nxt, "allowed": False, "refused": [], "reason": str(exc)})
        return out

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
                "backwards: retrain to make a new version ({fix})",
                fix=Fix("train", (version.name, "--from", version.id)),
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
                        else "no evaluation metrics recorded: evaluate the model (training through mm_magics "
                        "records them) and commit it with metrics",
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
                f"{version.id} cannot enter {to}: {detail}. Fix the model, or force it with a reason ({{fix}})",
                fix=Fix("stage", (version.id, to, "--force", "-m", "WHY")),
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

        def build(snap: TreeView) -> Change:
            sdoc = snap.json(layout.stage_file(name, number))
            if sdoc is None or sdoc["stage"] != current:
                now = sdoc["stage"] if sdoc else "unknown"
                raise TransitionError(f"{version.id} moved to {now} meanwhile (another session): check and retry")
            record = transition_entry(
                from_stage=current,
                path=path,
                actor=actor,
                when=now_iso(),
                reason=reason,
                forced=bool(failed and force),
                gates=[r.__dict__ for r in results],
            )
            apply_transition(sdoc, record)
            msg = message(
                reason,
                action="transition",
                model=name,
                version=number,
                **{"from": current},
                to=to,
                path=" -> ".join(path),
                actor=actor,
                forced="yes" if record["forced"] else None,
            )
            return Change({layout.stage_file(name, number): dump_json(sdoc)}, msg, result=record)

        record, commit = self.registry.ledger.transact(build)
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
