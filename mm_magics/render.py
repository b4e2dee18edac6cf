"""HTML for engine records in notebooks: a face, attached to the records from outside.

The engine never imports this module. :func:`register` hands every record type to IPython's HTML formatter with
``for_type_by_name`` (module and class name, so nothing is imported until such a record is displayed); the magics
call it at ``%load_ext``. Pure string building with escaping everywhere; each renderer is small and keyed by the
record's own class (module and qualified name, so two classes of one name never meet).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

STYLE = (
    "<style>.mm{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.4}"
    ".mm table{border-collapse:collapse;margin:4px 0}.mm th,.mm td{padding:2px 10px 2px 0;text-align:left;"
    "vertical-align:top}.mm th{color:#555;font-weight:600}.mm .dim{color:#777}.mm .good{color:#1a7f37}"
    ".mm .bad{color:#cf222e}.mm code{background:rgba(127,127,127,.12);padding:0 3px;border-radius:3px}"
    ".mm .tag{display:inline-block;padding:0 6px;margin-right:4px;border-radius:8px;background:#ddf4ff;"
    "color:#0969da;font-size:12px}.mm pre{margin:4px 0;max-height:320px;overflow:auto}</style>"
)
RECORDS = "mm_magics.engine.records"
#: Every engine record a face displays, by (module, class): its HTML renderer, or None for its text in a <pre>.
_RENDERERS: dict[tuple[str, str], Callable[[Any], str] | None] = {
    (RECORDS, name): None for name in ("ModelSummary", "AliasChange", "AuditEntry", "FsckReport", "CheckedOut")
} | {("mm_magics.engine.serving.deployments", name): None for name in ("Deployment", "DeploymentList", "Prediction")}
_RENDERERS[("mm_magics.engine.monitoring.live", "ProbeReport")] = None


def renders(module: str, name: str) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    def deco(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        _RENDERERS[(module, name)] = fn
        return fn

    return deco


def rendered_types() -> list[tuple[str, str]]:
    """The (module, class name) of every record this face renders."""
    return list(_RENDERERS)


def to_html(obj: Any) -> str:
    fn = _RENDERERS.get((type(obj).__module__, type(obj).__qualname__))
    body = fn(obj) if fn else f"<pre>{e(str(obj))}</pre>"
    return f"{STYLE}<div class='mm'>{body}</div>"


def register(ipython: Any) -> None:
    """Attach :func:`to_html` to every record type in IPython's HTML formatter (deferred: imports nothing)."""
    formatter = ipython.display_formatter.formatters["text/html"]
    for module, name in _RENDERERS:
        formatter.for_type_by_name(module, name, to_html)


def unregister(ipython: Any) -> None:
    formatter = ipython.display_formatter.formatters["text/html"]
    for key in _RENDERERS:
        formatter.deferred_printers.pop(key, None)
        for typ in list(formatter.type_printers):
            if (typ.__module__, typ.__qualname__) == key:
                formatter.type_printers.pop(typ, None)


def e(value: Any) -> str:
    return html.escape(str(value))


def num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return e(value)


def table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not k.endswith("_std")}


def tags(items: Iterable[str]) -> str:
    return "".join(f"<span class='tag'>{e(i)}</span>" for i in items)


def signed(delta: float | None, lower_better: bool = False) -> str:
    if delta is None:
        return ""
    if abs(delta) < 1e-12:
        return "<span class='dim'>±0</span>"
    good = (delta < 0) if lower_better else (delta > 0)
    return f"<span class='{'good' if good else 'bad'}'>{delta:+.4g}</span>"


def _lower(metric: str) -> bool:
    from .engine.lifecycle import lower_is_better

    return lower_is_better(metric)


@renders("mm_magics.engine.training", "Run")
def _run(run: Any) -> str:
    metrics = scalar_metrics(run.metrics)
    prev = (run.previous or {}).get("metrics", {})
    rows = [
        (
            f"<code>{e(k)}</code>",
            num(v),
            num(prev.get(k, "")) if run.previous else "",
            signed(v - prev[k], _lower(k)) if isinstance(prev.get(k), (int, float)) else "",
        )
        for k, v in metrics.items()
    ]
    heads = ["metric", "this run", run.previous["id"] if run.previous else "", "Δ" if run.previous else ""]
    out = [
        f"<b>{e(run.name)}</b> — {e(run.estimator)} from <code>{e(run.model_var)}</code>, "
        f"{e(run.evaluation.get('method', ''))} <span class='dim'>(fit {run.fit_time:.2f}s, "
        f"total {run.wall_time:.2f}s)</span>",
        table(heads, rows),
    ]
    if run.search:
        s = run.search
        out.append(
            f"<div>{e(s['kind'])}: best <code>{e(s['best_params'])}</code>, CV score {num(s['best_score'])} "
            f"over {s['candidates']} candidates × {s['folds']} folds</div>"
        )
    cm = run.metrics.get("confusion_matrix")
    if cm:
        labels = [e(label) for label in cm["labels"]]
        rows = [[f"<b>{labels[i]}</b>", *[e(c) for c in row]] for i, row in enumerate(cm["matrix"])]
        out.append(
            "<details><summary>confusion matrix (rows: true, columns: predicted)</summary>"
            + table(["", *labels], rows)
            + "</details>"
        )
    data = run.data
    out.append(
        f"<div class='dim'>captured: {len(run.params)} params · data {data['rows']}×{data['columns']} "
        f"<code>#{e(data['hash'][:10])}</code> · schema · code ({len(run.code.splitlines())} lines) · environment"
        f"{' · parent ' + e(run.parent) if run.parent else ''} — commit with "
        f'<code>%mm_commit {e(run.name)} -m "why"</code></div>'
    )
    return "".join(out)


@renders(RECORDS, "Version")
def _version(v: Any) -> str:
    metrics = scalar_metrics(v.metrics)
    rows = [
        ("version", f"<b>{e(v.id)}</b> {tags(v.aliases)}"),
        ("commit", f"<code>{e((v.commit or '')[:10])}</code>"),
        ("stage", e(v.stage)),
        ("message", e(v.message)),
        ("estimator", e(v.estimator)),
        ("parent", e(v.parent or "—")),
        (
            "artifact",
            f"<code>{e(v.sha256[:16])}</code> ({v.artifact.get('size', 0):,} bytes, {e(v.artifact.get('format'))})",
        ),
        ("created", f"{e(v.created[:19])} by {e(v.actor)}"),
    ]
    if metrics:
        rows.append(("metrics", ", ".join(f"{e(k)}={num(x)}" for k, x in metrics.items())))
    if v.rollback_of:
        rows.append(("rollback of", e(v.rollback_of)))
    return table(["", ""], rows)


@renders(RECORDS, "LogPage")
def _log(page: Any) -> str:
    rows = []
    for v in page.versions:
        acc = scalar_metrics(v.metrics)
        key = next(iter(acc), None)
        rows.append(
            (
                f"<b>{e(v.id)}</b> {tags(v.aliases)}",
                e(v.parent or ""),
                e(v.stage),
                f"{e(key)}={num(acc[key])}" if key else "",
                e(v.created[:19]),
                e(v.message),
            )
        )
    more = (
        f"<div class='dim'>older: <code>%mm_log {e(page.name)} --before {page.next_before}</code></div>"
        if page.next_before
        else ""
    )
    return (
        f"<b>{e(page.name)}</b> <span class='dim'>{page.total} version(s)</span>"
        + table(["version", "parent", "stage", "metric", "created", "message"], rows)
        + more
    )


@renders(RECORDS, "VersionDiff")
def _diff(d: Any) -> str:
    out = [f"<b>{e(d.a)} → {e(d.b)}</b>"]
    if d.agreement is not None:
        out.append(f"<div>predictions agree on <b>{d.agreement:.1%}</b> of {d.agreement_rows} probe rows</div>")
    elif d.agreement_note:
        out.append(f"<div class='dim'>prediction agreement: {e(d.agreement_note)}</div>")
    metric_rows = [
        (f"<code>{e(m.name)}</code>", num(m.a), num(m.b), signed(m.delta, _lower(m.name)))
        for m in d.metrics
        if not isinstance(m.a, (dict, list)) and not isinstance(m.b, (dict, list))
    ]
    if metric_rows:
        out.append(table(["metric", d.a, d.b, "Δ"], metric_rows))
    for title, changes in (
        ("params", d.params),
        ("data", d.data),
        ("schema", d.schema),
        ("environment", d.environment),
    ):
        if changes:
            rows = [(f"<code>{e(k)}</code>", e(a), e(b)) for k, (a, b) in changes.items()]
            out.append(
                f"<details{' open' if title == 'params' else ''}><summary>{title} ({len(rows)} changed)"
                f"</summary>{table(['', d.a, d.b], rows)}</details>"
            )
    out.append(
        f"<div>artifact {'changed' if d.artifact_changed else 'identical'}; data "
        f"{'changed' if d.data_changed else 'identical'}</div>"
    )
    if d.code_diff:
        out.append(f"<details><summary>code</summary><pre>{e(d.code_diff)}</pre></details>")
    return "".join(out)


@renders(RECORDS, "ModelList")
def _models(ml: Any) -> str:
    if not ml.models:
        return f"<span class='dim'>{e(str(ml))}</span>"
    rows = [
        (
            f"<b>{e(m.name)}</b>",
            f"v{m.latest}",
            tags(f"{a}→v{n}" for a, n in m.aliases.items()),
            e(", ".join(f"{s}: {n}" for s, n in m.stages.items())),
            e(f"{m.serving} ({m.serving_status})") if m.serving else "<span class='dim'>not deployed</span>",
        )
        for m in ml.models
    ]
    return table(["model", "latest", "aliases", "versions by stage", "serving now"], rows)


@renders(RECORDS, "Transition")
def _transition(t: Any) -> str:
    gates = "".join(f"<li class='{'good' if g.passed else 'bad'}'>{e(g.gate)}: {e(g.detail)}</li>" for g in t.gates)
    forced = " <span class='bad'>(forced)</span>" if t.forced else ""
    return (
        f"<b>{e(t.version)}</b>: {' → '.join(e(s) for s in t.path)}{forced} "
        f"<span class='dim'>by {e(t.actor)}: {e(t.reason)}</span>" + (f"<ul>{gates}</ul>" if gates else "")
    )


@renders(RECORDS, "GateList")
def _gates(g: Any) -> str:
    if g.results:
        items = "".join(
            f"<li class='{'good' if r.passed else 'bad'}'>{'✔' if r.passed else '✘'} {e(r.gate)}: {e(r.detail)}</li>"
            for r in g.results
        )
        return f"<b>{e(g.name)} → {e(g.stage)}</b><ul>{items}</ul>"
    return f"<pre>{e(str(g))}</pre>"


@renders(RECORDS, "CommittedRun")
def _committed(c: Any) -> str:
    return _run(c.run) + f"<div>committed <b>{e(c.version.id)}</b> <code>{e((c.version.commit or '')[:8])}</code></div>"


def sparkline(values: list[float], width: int = 140, height: int = 24, color: str = "#0969da") -> str:
    """An inline SVG line: readable at a glance, no JavaScript, survives a saved notebook."""
    if not values:
        return ""
    top = max(values) or 1.0
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values))
    return (
        f"<svg width='{width}' height='{height}' style='vertical-align:middle'>"
        f"<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{points}'/></svg>"
    )


@renders("mm_magics.engine.monitoring.live", "Snapshot")
def _snapshot(s: Any) -> str:
    err = f"{s.error_rate:.1%}" if s.error_rate is not None else "—"
    out = [
        f"<b>{e(s.name)}</b> <span class='dim'>{e(s.version or 'not deployed')} · last {s.window_s:.0f}s</span>",
        f"<div>{s.requests} requests · {s.rate_per_s:.2f}/s {sparkline(s.series.get('requests', []))} · "
        f"errors {err} · p95 {sparkline(s.series.get('p95_ms', []), color='#bf8700')}</div>",
    ]
    if s.latency_ms:
        rows = [(e(k), num(v["p50"]), num(v["p95"]), num(v["p99"])) for k, v in s.latency_ms.items()]
        out.append(table(["latency (ms)", "p50", "p95", "p99"], rows))
    if s.quality:
        rows = [
            (
                f"<code>{e(k)}</code>",
                num(v),
                num(s.training.get(k, "")),
                signed(v - s.training[k], _lower(k)) if k in s.training else "",
            )
            for k, v in s.quality.items()
        ]
        out.append(
            f"<div>live quality on {s.labelled} labelled predictions</div>"
            + table(["metric", "live", "training", "Δ"], rows)
        )
    else:
        out.append("<div class='dim'>no ground truth yet: <code>%mm_feedback NAME y_true</code></div>")
    if s.drift:
        rows = []
        for f, d in sorted(s.drift.items(), key=lambda kv: -(kv[1].get("psi") or 0)):
            value = d.get("psi")
            cls = "bad" if value is not None and value > 0.2 else ("dim" if value is None or value < 0.1 else "")
            ks_p = d.get("ks_p")
            rows.append(
                (
                    e(f),
                    f"<span class='{cls}'>{num(value) if value is not None else '—'}</span>",
                    num(ks_p) if ks_p is not None else "—",
                    num(int(d.get("n") or 0)),
                )
            )
        out.append(
            "<details><summary>drift per feature (PSI > 0.2 is a significant shift)</summary>"
            + table(["feature", "PSI", "KS p-value", "rows"], rows)
            + "</details>"
        )
    for a in s.alerts:
        out.append(f"<div class='bad'>⚠ {e(a['rule'])}: {e(a['message'])}</div>")
    if s.sink:
        state = "connected" if s.sink.get("connected") else "<span class='bad'>unreachable</span>"
        why = f" ({e(s.sink['last_error'])})" if not s.sink.get("connected") and s.sink.get("last_error") else ""
        out.append(f"<div class='dim'>InfluxDB sink: {state}, {s.sink.get('spooled', 0)} points spooled{why}</div>")
    return "".join(out)
