"""Model cards: one version's story, assembled from what the workspace already recorded, never typed by hand.

Intended use and owner (the model's description, set once with ``mm describe``: owner, intended use, uses it is not
for; else the commit message and who committed it), the training data's fingerprint and schema, the
evaluation with the gates each stage move checked, the explanation, lineage in the version DAG, the stage history
(the audit log), where it is deployed and its live quality so far, and known limits derived from all of that. A
section with nothing recorded says so rather than disappearing, so a reviewer sees what is missing. The card is
Markdown (``mm card`` writes it; GitHub, GitLab and a notebook render it) and each face may render it further.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .workspace import Workspace

from .errors import MMError
from .records import Record


@dataclass(repr=False)
class ModelCard(Record):
    """A version's model card: ``markdown`` is the document, ``facts`` the structured data it was written from."""

    version: str
    markdown: str
    facts: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.markdown


def build(ws: Workspace, spec: str, *, window: str = "24h") -> ModelCard:
    """The card of ``spec``; live quality over ``window`` when the model is deployed here. Reads only."""
    v = ws.registry.get(spec)
    facts: dict[str, Any] = {"version": v.id, "owner": v.actor, "created": v.created, "message": v.message}
    md = [f"# Model card: {v.id}", ""]
    described = ws.registry.model_doc(v.name).get("card") or {}
    facts.update({k: described[k] for k in DESCRIPTION_FIELDS if described.get(k)})
    md += _section("Intended use and owner", _use(v, described))
    md += _section("Training data", _data(v, facts))
    md += _section("Evaluation and gates", _evaluation(ws, v, facts))
    md += _section("Explanation", _explanation(ws, v, facts))
    md += _section("Lineage", _lineage(ws, v, facts))
    md += _section("Stage history", _stages(ws, v, facts))
    md += _section("Deployment and live quality", _live(ws, v, window, facts))
    md += _section("Known limits", _limits(v, facts))
    return ModelCard(v.id, "\n".join(md).rstrip() + "\n", facts)


#: What a model's description holds (model.json "card"), each a short text: the card's first section reads them.
DESCRIPTION_FIELDS = ("owner", "intended_use", "out_of_scope")
MAX_TEXT = 2000


@dataclass(repr=False)
class ModelDescription(Record):
    """Who owns a model and what it is for (and not for): the settings a model card's first section reads."""

    name: str
    owner: str = ""
    intended_use: str = ""
    out_of_scope: str = ""
    commit: str | None = None  # the audited commit that set it, when this call changed it

    def __str__(self) -> str:
        shown = [f"  {k.replace('_', ' ')}: {getattr(self, k)}" for k in DESCRIPTION_FIELDS if getattr(self, k)]
        empty = f"no description yet (mm describe {self.name} --owner TEAM --use TEXT --not-for TEXT)"
        head = f"{self.name}: " + ("described" if shown else empty)
        return "\n".join([head, *shown])


def describe(ws: Workspace, name: str, message: str = "", **fields: str | None) -> ModelDescription:
    """Set the given fields of ``name``'s description (an empty text clears one) in one audited commit, or, with
    none given, return it as it is. Per model rather than per version: who owns it and what it is for outlive a
    retraining."""
    unknown = sorted(set(fields) - set(DESCRIPTION_FIELDS))
    if unknown:
        raise MMError(f"unknown description field(s) {', '.join(unknown)}: use {', '.join(DESCRIPTION_FIELDS)}")
    given = {k: v for k, v in fields.items() if v is not None}
    for key, text in given.items():
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise MMError(f"{key.replace('_', ' ')} must be a text of at most {MAX_TEXT} characters: shorten it")
    commit = None
    current = ws.registry.model_doc(name).get("card") or {}
    clean = {k: " ".join(v.split()) for k, v in given.items()}
    clean = {k: v for k, v in clean.items() if v != current.get(k, "")}  # saying it again changes nothing
    if clean:

        def mutate(doc: dict[str, Any]) -> None:
            card = doc.setdefault("card", {})
            for key, text in clean.items():
                if text:
                    card[key] = text
                else:
                    card.pop(key, None)

        commit = ws.registry.update_model(name, mutate, message or f"Describe {name}: {', '.join(clean)}", "card")
    doc = ws.registry.model_doc(name).get("card") or {}
    return ModelDescription(name, **{k: doc.get(k, "") for k in DESCRIPTION_FIELDS}, commit=commit)


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"## {title}", "", *lines, ""]


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, one line."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _use(v: Any, described: dict[str, str]) -> list[str]:
    lines = []
    if described.get("intended_use"):
        lines.append(f"- **Intended use**: {_cell(described['intended_use'])}")
    if described.get("out_of_scope"):
        lines.append(f"- **Not for**: {_cell(described['out_of_scope'])}")
    if described.get("owner"):
        lines.append(f"- **Owner**: {_cell(described['owner'])}")
    this = "This version" if described.get("intended_use") else "Purpose"
    lines.append(f"- **{this}** (from the commit message): {_cell(v.message) or 'not stated: commit with -m WHY'}")
    committed = v.created[:19].replace("T", " ")
    lines.append(f"- **Committed by** {_cell(v.actor)}, {committed} UTC")
    if not described:
        lines.append(
            f"- No description of the model yet: `mm describe {v.name} --owner TEAM --use TEXT --not-for TEXT`"
        )
    lines.append(f"- **Estimator**: `{v.estimator}` ({v.task or 'task unknown'})")
    project = v.project or {}
    if project.get("commit"):
        dirty = " (with uncommitted changes)" if project.get("dirty") else ""
        lines.append(f"- **Project commit**: `{project['commit'][:12]}`{dirty}")
    return lines


def _data(v: Any, facts: dict[str, Any]) -> list[str]:
    data, schema = v.data or {}, v.schema or {}
    facts["data"] = {k: data.get(k) for k in ("hash", "rows", "columns")}
    if not data:
        return ["No data fingerprint recorded: this version cannot be tied to the data it was trained on."]
    lines = [f"- **Fingerprint**: `{str(data.get('hash', ''))[:16]}` ({data.get('rows')} rows, {data.get('columns')} "
             "columns)"]  # fmt: skip
    target = data.get("target") or {}
    if target:
        span = f", {target['min']:.4g} to {target['max']:.4g}" if "min" in target and "max" in target else ""
        lines.append(f"- **Target**: `{_cell(target.get('name', 'y'))}`, {_cell(target.get('dtype', ''))}{span}")
    names = schema.get("feature_names") or []
    if names:
        lines += ["", "| feature | type | training range |", "|:---|:---|---:|"]
        profile = data.get("profile") or {}
        for name in names:
            p = profile.get(name) or {}
            rng = f"{p['min']:.4g} to {p['max']:.4g}" if "min" in p and "max" in p else ""
            lines.append(f"| {_cell(name)} | {_cell((schema.get('dtypes') or {}).get(name, ''))} | {rng} |")
    return lines


def _evaluation(ws: Any, v: Any, facts: dict[str, Any]) -> list[str]:
    metrics = {k: m for k, m in (v.metrics or {}).items() if isinstance(m, (int, float)) and not isinstance(m, bool)}
    facts["metrics"] = metrics
    lines = [f"- **{_cell(k)}**: {m:.4g}" for k, m in metrics.items()] or ["No evaluation metrics recorded."]
    gates = [(t, g) for t in ws.lifecycle.history(v.id) for g in t.gates]
    if gates:
        lines += ["", "| stage move | gate | result |", "|:---|:---|:---|"]
        for t, g in gates:
            result = ("passed" if g.passed else "FAILED") + (" (forced)" if t.forced and not g.passed else "")
            lines.append(f"| {' -> '.join(t.path)} | {_cell(g.gate)} | {result}: {_cell(g.detail)} |")
    facts["gates"] = [{"gate": g.gate, "passed": g.passed} for _, g in gates]
    return lines


def _explanation(ws: Any, v: Any, facts: dict[str, Any]) -> list[str]:
    if not v.explanation:
        return ["No explanation recorded (the version was committed without a probe sample)."]
    try:
        x = ws.registry.explanation(v.id)
    except MMError as exc:
        return [f"The explanation could not be read: {exc}"]
    facts["explanation"] = [[f["feature"], f["importance"]] for f in x.features[:10]]
    lines = [f"{x.method} ({x.scoring}, {x.rows} rows x {x.repeats} repeats):", ""]
    lines += ["| feature | importance | spread |", "|:---|---:|---:|"]
    lines += [f"| {_cell(f['feature'])} | {f['importance']:.3f} | {f['std']:.3f} |" for f in x.features[:10]]
    return lines


def _lineage(ws: Any, v: Any, facts: dict[str, Any]) -> list[str]:
    graph = ws.registry.version_graph(v.name)
    ancestors, node = [], v.id
    while True:
        parents = [p for p in graph.predecessors(node)] if node in graph else []
        if not parents:
            break
        node = parents[0]
        ancestors.append(node)
    children = sorted(graph.successors(v.id)) if v.id in graph else []
    facts["lineage"] = {"ancestors": ancestors, "children": children}
    lines = [f"- **Derived from**: {' <- '.join(ancestors) if ancestors else 'nothing (a first version)'}"]
    if v.rollback_of:
        lines.append(f"- **Rollback**: made equal to its parent, replacing {v.rollback_of}")
    lines.append(f"- **Versions derived from it**: {', '.join(children) or 'none yet'}")
    return lines


def _stages(ws: Any, v: Any, facts: dict[str, Any]) -> list[str]:
    moves = ws.lifecycle.history(v.id)
    facts["stage"] = v.stage
    lines = [f"Now in **{v.stage}**.", "", "| when (UTC) | move | by | why |", "|:---|:---|:---|:---|"]
    for t in moves:
        forced = " (forced)" if t.forced else ""
        lines.append(f"| {t.time[:19].replace('T', ' ')} | {' -> '.join(t.path)}{forced} | {_cell(t.actor)} | "
                     f"{_cell(t.reason)} |")  # fmt: skip
    return lines


def _live(ws: Any, v: Any, window: str, facts: dict[str, Any]) -> list[str]:
    """Where it serves, and what this version itself did live (answered, as a canary's share, or shadowed)."""
    deployment = ws.deployments.get(v.name) if (ws.run_dir / "deployments").is_dir() else None
    serving = deployment is not None and deployment.version == v.id
    facts["deployed"] = serving
    release = (deployment.release or {}) if deployment is not None else {}
    candidate = release.get("version") == v.id
    if serving:
        lines = [f"- **Serving** at {deployment.url} ({deployment.runner})"]
    elif candidate:
        lines = [f"- **{release['mode'].capitalize()}** beside {deployment.version} at {deployment.url}"]
    else:
        where = f" (the deployment serves {deployment.version})" if deployment is not None else ""
        lines = [f"- Not deployed on this machine{where}."]
    if not (ws.run_dir / "metrics.sqlite").exists():
        return lines
    seen = ws.monitor.version_evidence(v.name, v.number, window)
    facts["live"] = {"requests": seen["answered"], "shadow": seen["shadow"], "labelled": seen["labelled"],
                     "quality": seen["quality"]}  # fmt: skip
    if seen["answered"] or seen["shadow"]:
        did = [f"answered {seen['answered']} requests"] if seen["answered"] else []
        did += [f"predicted {seen['shadow']} as a shadow"] if seen["shadow"] else []
        lines.append(f"- **Live, last {window}**: {' and '.join(did)}")
        if seen["quality"]:
            q = ", ".join(f"{k} {m:.3f}" for k, m in seen["quality"].items())
            lines.append(f"- **Live quality** on {seen['labelled']} labelled predictions: {q}")
        else:
            lines.append("- **Live quality**: no ground truth received yet")
    return lines


def _limits(v: Any, facts: dict[str, Any]) -> list[str]:
    """What the record itself says the model cannot vouch for."""
    out = []
    if facts.get("out_of_scope"):
        out.append(f"- Not meant for: {_cell(facts['out_of_scope'])} (the owner's word).")
    rows = (v.data or {}).get("rows")
    if rows is not None and rows < 1000:
        out.append(f"- Trained on {rows} rows: estimates from so few rows are uncertain.")
    if (v.data or {}).get("profile"):
        out.append("- Inputs outside the training ranges above were never seen in training; drift monitoring flags "
                   "them.")  # fmt: skip
    if not facts.get("metrics"):
        out.append("- No evaluation metrics: its quality is unknown until it is evaluated.")
    if not facts.get("live", {}).get("labelled"):
        out.append("- No live quality yet: training-time metrics are the only evidence.")
    if not (v.project or {}).get("commit"):
        out.append("- No project commit recorded: the code around the training cell is not pinned.")
    elif (v.project or {}).get("dirty"):
        out.append("- The project had uncommitted changes when it was trained: rebuilding it may not be exact.")
    if any(not g["passed"] for g in facts.get("gates", [])):
        out.append("- It moved past a failed gate (forced): see the stage history for the reason.")
    return out or ["- None recorded."]
