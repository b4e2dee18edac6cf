"""Plain data objects the engine returns; every face (magic, CLI, REST, widget) renders these.

Each has a readable ``__str__`` for terminals and logs and a ``to_dict`` for JSON faces. HTML is attached from the
outside by the notebook face (``mm_magics.render``, through IPython's formatters): the engine never imports a face.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class Record:
    """Base of the engine's records: readable text, a compact repr, and a plain dict for every face."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display: the readable form (records are declared with ``repr=False`` so IPython's
        printer, which walks the MRO for ``__repr__``, reaches this method)."""
        printer.text(str(self))

    def __repr__(self) -> str:
        first = str(self).splitlines()
        return f"<{type(self).__name__} {first[0] if first else ''}>"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(repr=False)
class Version(Record):
    """One committed version: its metadata as stored in git, plus its current stage and aliases."""

    name: str
    number: int
    created: str
    message: str
    actor: str
    artifact: dict[str, Any]
    parent: str | None = None
    estimator: str | None = None
    task: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    code: str | None = None
    schema: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    project: dict[str, Any] | None = None
    probe: dict[str, Any] | None = None
    explanation: dict[str, Any] | None = None  # summary of the explanation artifact (explain.summary)
    rollback_of: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    aliases: list[str] = field(default_factory=list)
    commit: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.number}"

    @property
    def sha256(self) -> str:
        return self.artifact["sha256"]

    @classmethod
    def from_doc(cls, doc: dict[str, Any], **extra: Any) -> Version:
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        known["name"] = doc["model"]
        known["number"] = doc["version"]
        known.update(extra)
        return cls(**known)

    def __str__(self) -> str:
        from .metrics import ordered  # here, not at import: records load with the extension, numpy need not

        shown = {k: v for k, v in self.metrics.items() if not isinstance(v, (list, dict))}
        metrics = ", ".join(f"{k}={_fmt(shown[k])}" for k in ordered(shown))
        short = (self.commit or "")[:8]
        parts = [f"{self.id} ({short})", self.stage or "", metrics, self.message]
        return "  ".join(p for p in parts if p)


@dataclass(repr=False)
class LogPage(Record):
    """A page of a model's history, newest first; ``next_before`` is the cursor for the next page."""

    name: str
    versions: list[Version]
    total: int
    next_before: int | None

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.total} version(s)"]
        for v in self.versions:
            parent = f" <- {v.parent}" if v.parent else ""
            alias = f" [{', '.join(v.aliases)}]" if v.aliases else ""
            lines.append(f"  {v.id}{alias}{parent}  {v.stage}  {v.created[:19]}  {v.message}")
        if self.next_before:
            lines.append(f"  ... older versions: log(before={self.next_before})")
        return "\n".join(lines)


@dataclass(repr=False)
class ModelSummary(Record):
    name: str
    latest: int
    aliases: dict[str, int]
    stages: dict[str, int]  # versions per lifecycle stage (the *deploy* stage is not "served now": see serving)
    created: str
    serving: str | None = None  # NAME@vN a deployment serves now, with its health in serving_status
    serving_status: str | None = None
    open_alerts: int = 0  # alerts recorded open by monitoring (evaluated when someone monitors the model)

    def __str__(self) -> str:
        alias = ", ".join(f"{a}=v{n}" for a, n in self.aliases.items())
        stages = ", ".join(f"{s}:{n}" for s, n in self.stages.items())
        served = f"serving {self.serving} ({self.serving_status})" if self.serving else "not deployed"
        if self.open_alerts:
            served += f", {self.open_alerts} open alert(s)"
        return f"{self.name}  latest v{self.latest}  {alias}  versions by stage {stages}  {served}".replace(
            "    ", "  "
        )


@dataclass
class MetricDelta:
    name: str
    a: Any
    b: Any
    delta: float | None


@dataclass(repr=False)
class VersionDiff(Record):
    """What changed between two versions, including how often their predictions agree on a probe sample."""

    a: str
    b: str
    params: dict[str, tuple[Any, Any]]
    metrics: list[MetricDelta]
    data_changed: bool
    data: dict[str, tuple[Any, Any]]
    code_diff: str
    schema: dict[str, tuple[Any, Any]]
    environment: dict[str, tuple[Any, Any]]
    artifact_changed: bool
    agreement: float | None = None
    agreement_rows: int | None = None
    agreement_note: str | None = None
    estimator: tuple[str, str] | None = None  # (a, b) when the estimator changed: then params differ wholesale
    #: per feature: importance in a and in b, and the change, largest first (both explained at commit time)
    importance_shift: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"diff {self.a} -> {self.b}"]
        if self.estimator:
            lines.append(f"estimator changed: {self.estimator[0]} -> {self.estimator[1]}")
        if self.params:
            lines.append("params:")
            lines += [f"  {k}: {a!r} -> {b!r}" for k, (a, b) in self.params.items()]
        if self.metrics:
            lines.append("metrics:")
            for m in self.metrics:
                d = f" ({m.delta:+.4g})" if m.delta is not None else ""
                lines.append(f"  {m.name}: {_fmt(m.a)} -> {_fmt(m.b)}{d}")
        lines.append(f"data: {'changed' if self.data_changed else 'same'}")
        lines += [f"  {k}: {a!r} -> {b!r}" for k, (a, b) in self.data.items()]
        if self.schema:
            lines.append("schema:")
            lines += [f"  {k}: {a!r} -> {b!r}" for k, (a, b) in self.schema.items()]
        if self.environment:
            lines.append("environment:")
            lines += [f"  {k}: {a} -> {b}" for k, (a, b) in self.environment.items()]
        lines.append(f"artifact: {'changed' if self.artifact_changed else 'same'}")
        if self.agreement is not None:
            lines.append(f"prediction agreement: {self.agreement:.1%} of {self.agreement_rows} probe rows")
        elif self.agreement_note:
            lines.append(f"prediction agreement: {self.agreement_note}")
        if self.importance_shift:
            lines.append("importance shift (permutation importance, largest first):")
            for r in self.importance_shift[:8]:
                lines.append(f"  {r['feature']}: {_fmt(r['a'])} -> {_fmt(r['b'])} ({r['delta']:+.3f})")
        if self.code_diff:
            lines.append("code:")
            lines.append(self.code_diff.rstrip("\n"))
        return "\n".join(lines)


@dataclass(repr=False)
class AliasChange(Record):
    name: str
    alias: str
    old: int | None
    new: int | None
    commit: str

    def __str__(self) -> str:
        old = f"v{self.old}" if self.old else "(none)"
        new = f"v{self.new}" if self.new else "(deleted)"
        return f"{self.name}@{self.alias}: {old} -> {new}"


@dataclass
class GateResult:
    gate: str
    passed: bool
    detail: str


@dataclass(repr=False)
class Transition(Record):
    """A lifecycle move, as recorded in the audit log."""

    version: str
    from_stage: str | None
    to_stage: str
    path: list[str]
    actor: str
    time: str
    reason: str
    forced: bool = False
    gates: list[GateResult] = field(default_factory=list)
    commit: str | None = None

    def __str__(self) -> str:
        forced = " (forced)" if self.forced else ""
        return f"{self.version}: {' -> '.join(self.path)}{forced}  by {self.actor} at {self.time[:19]}: {self.reason}"


@dataclass(repr=False)
class AuditEntry(Record):
    commit: str
    time: str
    actor: str
    action: str
    model: str | None
    summary: str

    def __str__(self) -> str:
        return f"{self.time[:19]}  {self.commit[:8]}  {self.actor}  {self.action:<10} {self.summary}"


@dataclass(repr=False)
class FsckReport(Record):
    versions: int
    objects: int
    problems: list[str]
    orphans: list[str]
    index_rebuilt: bool
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = f"fsck: {self.versions} version(s), {self.objects} object(s): " + (
            "ok" if self.ok else f"{len(self.problems)} problem(s)"
        )
        lines = [head, *(f"  repaired: {r}" for r in self.repaired), *(f"  problem: {p}" for p in self.problems)]
        if self.orphans:
            lines.append(f"  {len(self.orphans)} unreferenced object(s): `mm gc` removes them")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass(repr=False)
class ModelList(Record):
    models: list[ModelSummary]

    def __str__(self) -> str:
        if not self.models:
            return "no models yet: train one and commit it (the quick start shows how; `mm demo` runs it)"
        return "\n".join(str(m) for m in self.models)


@dataclass(repr=False)
class VersionDetails(Record):
    """A version as a face shows it when it is selected: itself, what changed since its parent, where it may go
    next (each next stage allowed or refused by which gate), and whether a deployment serves it now."""

    version: Version
    diff: VersionDiff | None
    moves: list[dict[str, Any]]  # as LifecyclePicture.moves
    serving: str | None = None  # the version the model's deployment serves now, and its health
    serving_status: str | None = None

    def __str__(self) -> str:
        v = self.version
        lines = [str(v)]
        lines.append(str(self.diff) if self.diff else "  (a first version: no parent to compare with)")
        for m in self.moves:
            why = (
                "allowed"
                if m["allowed"]
                else "refused: "
                + ("; ".join(f"{r['gate']} ({r['detail']})" for r in m["refused"]) or m.get("reason", ""))
            )
            lines.append(f"  -> {m['to']}: {why}")
        if self.serving:
            here = "serves this version" if self.serving == v.id else f"serves {self.serving}"
            lines.append(f"  deployment {here} ({self.serving_status})")
        return "\n".join(lines)


@dataclass(repr=False)
class ModelOverview(Record):
    """A model at a glance (the model view): its version timeline, lifecycle graph, live series and deployment."""

    name: str
    timeline: Any  # engine.timeline.Timeline
    lifecycle: LifecyclePicture
    series: Any  # engine.monitoring.series.Series
    deployment: Any = None  # engine.serving.deployments.Deployment, or None when not deployed

    def __str__(self) -> str:
        serving = (
            f"serves {self.deployment.version} at {self.deployment.url} ({self.deployment.status})"
            if self.deployment is not None
            else "not deployed"
        )
        return "\n".join([f"{self.name}: {serving}", str(self.timeline), str(self.lifecycle), str(self.series)])


@dataclass(repr=False)
class GateList(Record):
    """A model's gates for a stage, or (with results) how a version fares against them."""

    name: str
    stage: str
    gates: list[dict[str, str]]
    results: list[GateResult]

    def __str__(self) -> str:
        if self.results:
            lines = [f"{self.name} -> {self.stage}:"]
            lines += [f"  {'pass' if r.passed else 'FAIL'}  {r.gate}: {r.detail}" for r in self.results]
            return "\n".join(lines)
        if not self.gates:
            return f"{self.name} has no gates"
        return "\n".join(f"{self.name} {g['stage']} gate: {g['expr']}" for g in self.gates)


@dataclass(repr=False)
class LifecyclePicture(Record):
    """A model's stage DAG as a face draws it: stages in layers (topological generations, left to right) with how
    many versions sit in each, edges with the gates that guard them, and for one version its stage, the path it
    walked and, for each next stage, whether the move is allowed or which gate refuses it and by how much."""

    model: str
    stages: list[dict[str, Any]]  # name, layer, row, count
    edges: list[dict[str, Any]]  # from, to, gates (expressions guarding the stage entered)
    version: str | None = None
    stage: str | None = None
    path: list[str] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)  # to, allowed, refused: [{gate, detail}], reason

    def __str__(self) -> str:
        layers: dict[int, list[str]] = {}
        for s in self.stages:
            layers.setdefault(s["layer"], []).append(f"{s['name']}({s['count']})")
        lines = [f"{self.model} lifecycle: " + " -> ".join(" | ".join(v) for _, v in sorted(layers.items()))]
        if self.version:
            lines.append(f"{self.version} is in {self.stage} (walked {' -> '.join(self.path) or self.stage})")
            for m in self.moves:
                verdict = (
                    "allowed"
                    if m["allowed"]
                    else "refused: "
                    + ("; ".join(f"{r['gate']} ({r['detail']})" for r in m["refused"]) or m.get("reason", ""))
                )
                lines.append(f"  -> {m['to']}: {verdict}")
        return "\n".join(lines)


@dataclass(repr=False)
class CheckedOut(Record):
    version: Version
    var: str

    def __str__(self) -> str:
        return f"loaded {self.version.id} into `{self.var}` (sha256 {self.version.sha256[:12]} verified)"


@dataclass(repr=False)
class CommittedRun(Record):
    """A training run committed straight away (``%%mm_train --commit``)."""

    run: Any
    version: Version

    def __str__(self) -> str:
        return f"{self.run}\ncommitted {self.version.id} ({(self.version.commit or '')[:8]})"
