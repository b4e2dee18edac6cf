"""HTML for runs, versions, logs, diffs, model listings, lifecycle moves and gates."""

from __future__ import annotations

from typing import Any

from . import charts
from .core import (
    RECORDS,
    dim,
    e,
    is_lower_better,
    mark,
    num,
    renders,
    scalar_metrics,
    signed,
    table,
    tags,
)


def _metric_table(metrics: dict[str, Any], other: dict[str, Any] | None, other_name: str, label: str) -> str:
    """This run's or version's metrics, one per row, beside another version's with the delta (✓ better, ✗ worse)."""
    mine = scalar_metrics(metrics)
    if other is None:
        return table(["metric", label], [(f"<code>{e(k)}</code>", num(v)) for k, v in mine.items()], numeric=(1,))
    rows = [
        (
            f"<code>{e(k)}</code>",
            num(v),
            num(other.get(k, "")),
            signed(v - other[k], is_lower_better(k)) if isinstance(other.get(k), (int, float)) else "",
        )
        for k, v in mine.items()
    ]
    return table(["metric", label, other_name, "Δ"], rows, numeric=(1, 2, 3))


@renders("mm_magics.engine.training", "Run")
def _run(run: Any) -> str:
    previous = run.previous or {}
    out = [
        f"<b>{e(run.name)}</b> — {e(run.estimator)} from <code>{e(run.model_var)}</code>, "
        f"{e(run.evaluation.get('method', ''))} " + dim(f"(fit {run.fit_time:.2f}s, total {run.wall_time:.2f}s)"),
        _metric_table(run.metrics, previous.get("metrics") if previous else None, previous.get("id", ""), "this run"),
    ]
    if run.search:
        s = run.search
        out.append(
            f"<div>{e(s['kind'])}: best <code>{e(s['best_params'])}</code>, CV score {num(s['best_score'])} "
            f"over {s['candidates']} candidates × {s['folds']} folds</div>"
        )
    out.append(charts.gallery(_charts(run)))
    cm = run.metrics.get("confusion_matrix")
    if cm:
        out.append(
            "<details><summary>confusion matrix (rows: true, columns: predicted)</summary>"
            + _heatmap(cm["labels"], cm["matrix"])
            + "</details>"
        )
    data = run.data
    out.append(
        "<div>"
        + dim(
            f"captured: {len(run.params)} params · data {data['rows']}×{data['columns']} "
            f"<code>#{e(data['hash'][:10])}</code> · schema · code ({len(run.code.splitlines())} lines) · environment"
            f"{' · parent ' + e(run.parent) if run.parent else ''} — commit with "
            f'<code>%mm_commit {e(run.name)} -m "why"</code>'
        )
        + "</div>"
    )
    return "".join(out)


def _heatmap(labels: list[Any], matrix: list[list[int]]) -> str:
    """The confusion matrix as a heatmap table: the counts stay text, the shading says where they pile up."""
    top = max((c for row in matrix for c in row), default=0)
    cell = "text-align:right;padding:2px 8px;border:1px solid #d0d7de;font-variant-numeric:tabular-nums"
    head = "".join(f"<th style='text-align:right;padding:2px 8px;border:none'>{e(label)}</th>" for label in labels)
    rows = []
    for label, row in zip(labels, matrix, strict=True):
        cells = "".join(
            f"<td style='{cell};background:{bg};color:{fg}'>{c}</td>"
            for c, (bg, fg) in ((c, charts.heat(c, top)) for c in row)
        )
        rows.append(f"<tr><th style='text-align:left;padding:2px 8px;border:none'>{e(label)}</th>{cells}</tr>")
    corner = "<th style='text-align:left;border:none'></th>"
    return (
        "<table style='border-collapse:collapse;margin:4px 0;width:auto'>"
        f"<thead><tr>{corner}{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _charts(run: Any) -> list[tuple[str, str]]:
    """The run's pictures: ROC and precision–recall for a binary classifier, residuals for a regressor, and the CV
    score of every candidate of a search."""
    found = (run.evaluation or {}).get("diagnostics") or {}
    out = []
    if "roc" in found:
        roc = found["roc"]
        label = f"AUC {roc['auc']:.3f}"
        svg = charts.plot(
            [(roc["fpr"], roc["tpr"], label, charts.BLUE, False)],
            title="ROC", x_label="false positive rate", y_label="true positive rate",
            x_range=(0, 1), y_range=(0, 1), diagonal=True,
        )  # fmt: skip
        out.append((svg, f"ROC curve ({label})"))
    if "pr" in found:
        pr = found["pr"]
        label = f"AP {pr['ap']:.3f}"
        base = pr["base_rate"]
        svg = charts.plot(
            [
                (pr["recall"], pr["precision"], label, charts.ORANGE, False),
                ([0, 1], [base, base], f"chance {base:.2f}", charts.GREY, False),
            ],
            title=f"precision–recall (positive: {found.get('positive')})", x_label="recall", y_label="precision",
            x_range=(0, 1), y_range=(0, 1), legend_low=True,
        )  # fmt: skip
        out.append((svg, f"precision–recall curve ({label})"))
    if "residuals" in found:
        res = found["residuals"]
        svg = charts.plot(
            [(res["predicted"], res["residual"], "", charts.BLUE, True)],
            title="residuals (true − predicted)", x_label="predicted", y_label="residual", zero_line=True,
        )  # fmt: skip
        out.append((svg, f"residuals of {len(res['residual'])} hold-out rows"))
    table_ = (run.search or {}).get("cv_results") or []
    if len(table_) > 1:
        ranked = sorted(table_, key=lambda r: r["rank"])
        svg = charts.plot(
            [
                (list(range(1, len(ranked) + 1)), [r["mean_test_score"] for r in ranked], "mean", charts.BLUE, True),
                (
                    list(range(1, len(ranked) + 1)),
                    [r["mean_test_score"] - r["std_test_score"] for r in ranked],
                    "mean − std", charts.GREY, True,
                ),
            ],
            title="CV score by candidate", x_label="candidate (best first)", y_label="CV score",
        )  # fmt: skip
        out.append((svg, f"CV scores of {len(ranked)} candidates"))
    return out


STAGE_COLOURS = ("#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#57606a", "#9a6700", "#0a3069")


@renders("mm_magics.engine.timeline", "Timeline")
def _timeline(t: Any) -> str:
    """The static picture of a timeline (what a saved notebook or a face without widgets shows): the metric of
    every version by number, one colour per stage, with the aliases named."""
    from ..engine.timeline import rows

    found = rows(t.payload)
    by_stage: dict[str, tuple[list[float], list[float]]] = {}
    for r in found:
        if r["value"] is not None:
            xs, ys = by_stage.setdefault(r["stage"], ([], []))
            xs.append(r["number"])
            ys.append(r["value"])
    series = [
        (xs, ys, stage, STAGE_COLOURS[i % len(STAGE_COLOURS)], True)
        for i, (stage, (xs, ys)) in enumerate(by_stage.items())
    ]
    aliases = " · ".join(f"{e(a)} → v{n}" for a, n in t.payload.get("aliases", {}).items())
    head = f"<b>{e(t.model)}</b> " + dim(f"{t.count} version(s){' · ' + aliases if aliases else ''}")
    if not series:
        return head + "<div>" + dim(f"no version has the metric {e(t.metric)}") + "</div>"
    svg = charts.plot(series, title=f"{t.metric} by version", x_label="version", y_label=str(t.metric))
    return head + charts.gallery([(svg, f"{t.metric} of {t.count} versions, coloured by stage")])


@renders(RECORDS, "Version")
def _version(v: Any) -> str:
    rows = [
        ("version", f"<b>{e(v.id)}</b> {tags(v.aliases)}"),
        ("stage", e(v.stage)),
        ("message", e(v.message)),
        ("estimator", e(v.estimator)),
        ("parent", e(v.parent or "—") + (f" (a rollback of {e(v.rollback_of)})" if v.rollback_of else "")),
        (
            "artifact",
            f"<code>{e(v.sha256[:16])}</code> ({v.artifact.get('size', 0):,} bytes, {e(v.artifact.get('format'))})",
        ),
        ("created", f"{e(v.created[:19])} by {e(v.actor)} · commit <code>{e((v.commit or '')[:10])}</code>"),
    ]
    card = table(["", ""], [(dim(e(k)), val) for k, val in rows])
    metrics = scalar_metrics(v.metrics)
    return card + (_metric_table(v.metrics, None, "", "value") if metrics else "")


@renders(RECORDS, "LogPage")
def _log(page: Any) -> str:
    rows = []
    for v in page.versions:
        shown = scalar_metrics(v.metrics)
        key = next(iter(shown), None)
        rows.append(
            (
                f"<b>{e(v.id)}</b> {tags(v.aliases)}",
                e(v.parent or ""),
                e(v.stage),
                f"{e(key)} {num(shown[key])}" if key else "",
                e(v.created[:19]),
                e(v.message),
            )
        )
    more = (
        "<div>" + dim(f"older: <code>%mm_log {e(page.name)} --before {page.next_before}</code>") + "</div>"
        if page.next_before
        else ""
    )
    return (
        f"<b>{e(page.name)}</b> "
        + dim(f"{page.total} version(s)")
        + table(["version", "parent", "stage", "metric", "created", "message"], rows)
        + more
    )


@renders(RECORDS, "VersionDiff")
def _diff(d: Any) -> str:
    out = [f"<b>{e(d.a)} → {e(d.b)}</b>"]
    if d.estimator:
        out.append(f"<div>estimator changed: <code>{e(d.estimator[0])}</code> → <code>{e(d.estimator[1])}</code></div>")
    if d.importance_shift:
        rows = [
            (e(r["feature"]), num(r["a"]) if r["a"] is not None else "—", num(r["b"]) if r["b"] is not None else "—",
             signed(r["delta"]))
            for r in d.importance_shift[:8]
        ]  # fmt: skip
        out.append(
            "<details><summary>importance shift (permutation importance, largest first)</summary>"
            + table(["feature", e(d.a), e(d.b), "Δ"], rows, numeric=(1, 2, 3))
            + "</details>"
        )
    if d.agreement is not None:
        out.append(f"<div>predictions agree on <b>{d.agreement:.1%}</b> of {d.agreement_rows} probe rows</div>")
    elif d.agreement_note:
        out.append("<div>" + dim(f"prediction agreement: {e(d.agreement_note)}") + "</div>")
    metric_rows = [
        (f"<code>{e(m.name)}</code>", num(m.a), num(m.b), signed(m.delta, is_lower_better(m.name)))
        for m in d.metrics
        if not isinstance(m.a, (dict, list)) and not isinstance(m.b, (dict, list))
    ]
    if metric_rows:
        out.append(table(["metric", d.a, d.b, "Δ"], metric_rows, numeric=(1, 2, 3)))
    sections = (("params", d.params), ("data", d.data), ("schema", d.schema), ("environment", d.environment))
    for title, changes in sections:
        if changes:
            rows = [(f"<code>{e(k)}</code>", e(a), e(b)) for k, (a, b) in changes.items()]
            # a new estimator differs in every param: the list is reference, not news, so it starts closed
            opened = " open" if title == "params" and not d.estimator else ""
            out.append(
                f"<details{opened}><summary>{title} ({len(rows)} changed)</summary>"
                f"{table(['', d.a, d.b], rows)}</details>"
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
        return dim(e(str(ml)))
    rows = [
        (
            f"<b>{e(m.name)}</b>",
            f"v{m.latest}",
            tags(f"{a}→v{n}" for a, n in m.aliases.items()),
            e(", ".join(f"{s}: {n}" for s, n in m.stages.items())),
            mark(m.serving_status == "running", e(f"{m.serving} ({m.serving_status})")) if m.serving else dim("—"),
        )
        for m in ml.models
    ]
    return table(["model", "latest", "aliases", "versions by stage", "serving now"], rows)


@renders(RECORDS, "Transition")
def _transition(t: Any) -> str:
    gates = "".join(f"<li>{mark(g.passed, f'{e(g.gate)}: {e(g.detail)}')}</li>" for g in t.gates)
    forced = " <b>(forced past refused gates)</b>" if t.forced else ""
    return (
        f"<b>{e(t.version)}</b>: {' → '.join(e(s) for s in t.path)}{forced} "
        + dim(f"by {e(t.actor)}: {e(t.reason)}")
        + (f"<ul>{gates}</ul>" if gates else "")
    )


@renders(RECORDS, "GateList")
def _gates(g: Any) -> str:
    if g.results:
        items = "".join(f"<li>{mark(r.passed, f'{e(r.gate)}: {e(r.detail)}')}</li>" for r in g.results)
        return f"<b>{e(g.name)} → {e(g.stage)}</b><ul>{items}</ul>"
    return f"<pre>{e(str(g))}</pre>"


@renders(RECORDS, "CommittedRun")
def _committed(c: Any) -> str:
    return _run(c.run) + f"<div>committed <b>{e(c.version.id)}</b> <code>{e((c.version.commit or '')[:8])}</code></div>"


@renders(RECORDS, "VersionDetails")
def _details(d: Any) -> str:
    """A selected version: its card, what changed since its parent, and the verdict on each next stage."""
    out = [_version(d.version)]
    out.append(_diff(d.diff) if d.diff else "<div>" + dim("a first version: no parent to compare with") + "</div>")
    for m in d.moves:
        why = "allowed" if m["allowed"] else "; ".join(f"{r['gate']} ({r['detail']})" for r in m["refused"])
        out.append("<div>" + mark(m["allowed"], f"→ {e(m['to'])}: {e(why or m.get('reason', ''))}") + "</div>")
    if d.serving:
        here = "serves this version" if d.serving == d.version.id else f"serves {e(d.serving)}"
        out.append("<div>" + dim(f"the deployment {here} ({e(d.serving_status)})") + "</div>")
    return "".join(out)


@renders(RECORDS, "ModelOverview")
def _overview(o: Any) -> str:
    """The model view's static picture: deployment, timeline, lifecycle graph and live series, one after another."""
    from .core import to_html

    parts = [to_html(o.deployment) if o.deployment is not None else "<div>" + dim("not deployed") + "</div>"]
    parts += [to_html(o.timeline), to_html(o.lifecycle), to_html(o.series)]
    return "".join(f"<div style='margin:4px 0 10px'>{p}</div>" for p in parts)


@renders("mm_magics.engine.explain", "Explanation")
def _explanation(x: Any) -> str:
    """Bars of text blocks: they read in both themes, survive an untrusted notebook and a saved one. A column of
    mean |SHAP| where shap was installed at commit time; one dim line says what it is, or how to get it."""
    top = max((f["importance"] for f in x.features), default=0.0) or 1.0
    shap = x.has_shap()
    rows = []
    for f in x.features[:20]:
        width = max(0, round(24 * f["importance"] / top))
        bar = f"<code style='letter-spacing:0;background:none'>{'█' * width or '·'}</code>"
        own = num(f["own"]) if x.own and f.get("own") is not None else ""
        row = [e(f["feature"]), f"{num(f['importance'])}&nbsp;±&nbsp;{num(f['std'])}", bar, own]  # one line
        if shap:
            row.append(num(f["shap"]) if f.get("shap") is not None else "")
        rows.append(row)
    headers = ["feature", "importance ± spread", "", x.own or "", *(["mean |SHAP|"] if shap else [])]
    head = f"<b>{e(x.version)}</b> " + dim(f"{e(x.method)} · {e(x.scoring)} · {x.rows} rows × {x.repeats} repeats")
    more = dim(f"… {len(x.features) - 20} more features") if len(x.features) > 20 else ""
    numeric = (1, 3, 4) if shap else (1, 3)
    return head + table(headers, rows, numeric=numeric) + more + f"<div>{dim(e(x.shap_note()))}</div>"


@renders("mm_magics.engine.cards", "ModelCard")
def _card(card: Any) -> str:
    """The card's Markdown as HTML, with raw HTML in it escaped (a commit message is user text)."""
    import mistune

    return mistune.create_markdown(escape=True, plugins=["table"])(card.markdown)


@renders("mm_magics.engine.reproduce", "Reproduction")
def _reproduction(r: Any) -> str:
    if r.same_artifact:
        head = mark(True, "rebuilt byte for byte (same artifact sha256)")
    elif r.identical:
        head = mark(True, f"rebuilt: predicts identically on {r.agreement_rows} sample rows")
    elif r.agreement is not None:
        head = mark(False, f"rebuilt, but only {r.agreement:.1%} of {r.agreement_rows} sample rows agree")
    else:
        head = dim("rebuilt; no agreement sample was recorded, so predictions were not compared")
    out = [f"<b>{e(r.version)}</b> {head}"]
    if r.metrics:
        rows = [(e(k), num(a), num(b), signed(b - a) if a is not None and b is not None else "") for k, (a, b) in
                r.metrics.items()]  # fmt: skip
        out.append(table(["metric", "recorded", "rebuilt", "Δ"], rows, numeric=(1, 2, 3)))
    if r.packages:
        rows = [(e(k), e(a or "—"), e(b or "—")) for k, (a, b) in r.packages.items()]
        out.append("<div>packages that differ</div>" + table(["package", "recorded", "here"], rows))
    if r.committed:
        out.append(f"<div>committed as <b>{e(r.committed)}</b></div>")
    return "".join(out)


@renders("mm_magics.engine.cards", "ModelDescription")
def _description(d: Any) -> str:
    """What the model card's first section will say: a two-column table, user text escaped."""
    fields = (("owner", d.owner), ("intended use", d.intended_use), ("not for", d.out_of_scope))
    rows = [(dim(k), e(v)) for k, v in fields if v]
    if not rows:
        return f"<b>{e(d.name)}</b> " + dim(
            f"no description yet: <code>%mm_describe {e(d.name)} --owner TEAM --use TEXT --not-for TEXT</code>"
        )
    saved = dim(f" · saved in commit {e(d.commit[:12])}") if d.commit else ""
    return f"<b>{e(d.name)}</b>{saved}" + table(["", ""], rows)
