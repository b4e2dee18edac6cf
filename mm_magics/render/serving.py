"""HTML for deployments, predictions, probes and the live monitor picture."""

from __future__ import annotations

from typing import Any

from .core import bad, dim, e, is_lower_better, mark, num, renders, signed, sparkline, table

DEPLOYMENTS = "mm_magics.engine.serving.deployments"
LIVE = "mm_magics.engine.monitoring.live"
#: Latency parts, each with a colour the sanitiser keeps (hex) that reads on light and dark backgrounds.
PARTS = (("processing", "#4e79a7"), ("queue", "#f28e2b"), ("overhead", "#8c8c8c"), ("network", "#59a14f"))


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _status(status: str) -> str:
    return mark(status == "running", e(status))


@renders(DEPLOYMENTS, "Deployment")
def _deployment(d: Any) -> str:
    where = f"process {d.pid}" if d.runner == "local" else f"container <code>{e((d.container_id or '')[:12])}</code>"
    stage = f" (stage {e(d.stage)})" if d.stage else ""
    rows = [
        ("status", _status(d.status)),
        ("serves", f"<b>{e(d.version)}</b>{stage}"),
        ("url", f"<a href='{e(d.url)}/v2/models/{e(d.name)}' target='_blank'>{e(d.url)}</a>"),
        (
            "endpoints",
            f"<code>POST {e(d.url)}/v2/models/{e(d.name)}/infer</code> (Open Inference V2) · "
            f"<code>POST {e(d.url)}/invocations</code> (MLflow)",
        ),
        ("runs as", f"{e(d.runner)}, {where}, micro-batching {'on' if d.batch else 'off'}"),
    ]
    if d.release:
        r = d.release
        share = f"{r['percent']:g} % of requests" if r["mode"] == "canary" else "every request, answering none"
        rows.append(
            (
                r["mode"],
                f"<b>{e(r['version'])}</b> takes {share}: compare with <code>%mm_monitor {e(d.name)}</code>, then "
                + (
                    f"the promotion rule promotes or aborts it (checked every {r['auto']['every']:g} s; "
                    f"<code>%mm_promote {e(d.name)}</code> or <code>%mm_abort {e(d.name)}</code> decide sooner)"
                    if r.get("auto")
                    else f"<code>%mm_promote {e(d.name)}</code> or <code>%mm_abort {e(d.name)}</code>"
                ),
            )
        )
    if d.gates:
        gates = " · ".join(mark(g.get("passed", False), f"{e(g['gate'])}: {e(g['detail'])}") for g in d.gates)
        rows.append(("gates", gates))
    if d.forced:
        refused = ", ".join(e(g["gate"]) for g in d.gates if not g.get("passed")) or "its gates"
        rows.append(("forced", bad(f"⚠ deployed past refused gates ({refused}); the audit log keeps the reason")))
    if d.token_required:
        rows.append(
            (
                "token",
                "every client must send the workspace token (this server is not loopback-only inside its "
                "container or host): <code>token = %mm_token</code>, then "
                "<code>headers={'Authorization': f'Bearer {token}'}</code>; in a shell "
                '<code>-H "Authorization: Bearer $(mm token)"</code>',
            )
        )
    if d.note:
        rows.append(("note", e(d.note)))
    return f"<b>{e(d.name)}</b>" + table(["", ""], [(dim(k), v) for k, v in rows])


@renders("mm_magics.engine.serving.publish", "PublishedImage")
def _published(p: Any) -> str:
    rows = [("image", f"<code>{e(p.image)}</code> ({e(p.image_id[:19])}), built in {p.seconds:.1f}s")]
    if p.pushed:
        rows += [("pushed", f"<code>{e(p.pushed)}</code>"), ("by digest", f"<code>{e(p.pinned)}</code>")]
    rows.append(("runs standalone", f"<code>docker run -p 8000:8000 {e(p.pushed or p.image)}</code>"))
    labels = {k: v for k, v in p.labels.items() if k.startswith("org.opencontainers.image.") or k.endswith("sha256")}
    rows += [(k.rsplit(".", 1)[-1], f"<code>{e(v)}</code>") for k, v in sorted(labels.items())]
    return f"<b>image of {e(p.version)}</b>" + table(["", ""], [(dim(k), v) for k, v in rows])


@renders("mm_magics.engine.serving.kubernetes", "KubernetesExport")
def _kubernetes(k: Any) -> str:
    objects = ", ".join(f"{e(m['kind'])} <code>{e(m['metadata']['name'])}</code>" for m in k.manifests)
    rows = [
        ("objects", objects),
        ("image", f"<code>{e(k.image)}</code>"),
        ("validated", "offline, against Kubernetes' schemas (strict) and KServe's InferenceService CRD"),
        ("files", "<br>".join(f"<code>{e(f)}</code>" for f in k.files)),
        ("apply", "<code>kubectl apply " + " ".join(f"-f {e(f)}" for f in k.files) + "</code>"),
    ]
    return f"<b>{e(k.version)} for Kubernetes</b>" + table(["", ""], [(dim(key), v) for key, v in rows])


@renders(DEPLOYMENTS, "DeploymentList")
def _deployments(listing: Any) -> str:
    if not listing.deployments:
        return dim(e(str(listing)))
    rows = [
        (
            f"<b>{e(d.name)}</b>",
            e(d.version),
            _status(d.status),
            f"<a href='{e(d.url)}/v2/models/{e(d.name)}' target='_blank'>{e(d.url)}</a>",
            e(d.runner) + (" · token" if d.token_required else "") + (" · " + bad("forced") if d.forced else ""),
        )
        for d in listing.deployments
    ]
    return table(["model", "version", "status", "url", "runs as"], rows)


def latency_bar(parts: dict[str, float], width: int = 240) -> str:
    """The split of one request's time as a stacked bar, each part also named with its milliseconds."""
    total = sum(parts.values()) or 1.0
    bar = "".join(
        f"<span title='{name}' style='display:inline-block;height:10px;width:{max(v / total * width, 1):.0f}px;"
        f"background:{colour}'></span>"
        for (name, colour), v in ((p, parts.get(p[0], 0.0)) for p in PARTS)
        if v > 0
    )
    legend = " · ".join(f"{name} {parts.get(name, 0.0):.2f}" for name, _ in PARTS)
    return f"<div style='margin:2px 0'>{bar}</div>" + dim(f"{legend} ms")


@renders(DEPLOYMENTS, "Prediction")
def _prediction(p: Any) -> str:
    predicted = p.outputs.get("predict", [])
    proba = p.outputs.get("predict_proba")
    heads = ["row", "prediction"]
    if proba:
        heads += [f"P(class {i})" for i in range(len(proba[0]))]
    rows = []
    for i, value in enumerate(predicted[:50]):
        row = [str(i), f"<b>{num(value)}</b>"]
        if proba:
            row += [f"{x:.3f}" for x in proba[i]]
        rows.append(row)
    more = dim(f"… {len(predicted) - 50} more rows (all in .outputs)") if len(predicted) > 50 else ""
    lat = p.latency_ms
    parts = {
        "processing": lat["processing"],
        "queue": lat["queue"],
        "overhead": max(lat["server"] - lat["processing"] - lat["queue"], 0.0),
        "network": lat["network"],
    }
    return (
        f"<b>{e(p.version)}</b> "
        + dim(f"request <code>{e(p.request_id)}</code> · {lat['total']:.1f} ms in all")
        + table(heads, rows, numeric=range(2, len(heads)))
        + more
        + latency_bar(parts)
    )


@renders(LIVE, "ProbeReport")
def _probe(r: Any) -> str:
    return (
        f"<b>{e(r.name)}</b>: {r.probes} timed probe requests · median client {r.client_ms_median:.2f} ms, of which "
        f"network {r.network_ms_median:.2f} ms "
        + dim("(kept apart from traffic: the monitor's latency split includes them, its request counts do not)")
    )


@renders(LIVE, "Snapshot")
def _snapshot(s: Any) -> str:
    err = f"{s.error_rate:.1%}" if s.error_rate is not None else "—"
    span = f"last {_duration(s.window_s)} → now"
    out = [
        f"<b>{e(s.name)}</b> " + dim(f"{e(s.version or 'not deployed')} · {span}"),
        f"<div>{s.requests} requests · {s.rate_per_s:.2f}/s · errors {err}</div>",
    ]
    if s.source:
        out.append(
            "<div>"
            + dim(f"served elsewhere: read from {e(s.source)} (quality and drift stay where it is served)")
            + "</div>"
        )
    out += [
        "<div>requests per bucket " + sparkline(s.series.get("requests", []), span=span) + "</div>",
        "<div>p95 server latency " + sparkline(s.series.get("p95_ms", []), unit=" ms", span=span) + "</div>",
    ]
    if s.latency_ms:
        rows = [(e(k), num(v["p50"]), num(v["p95"]), num(v["p99"])) for k, v in s.latency_ms.items()]
        out.append(table(["latency (ms)", "p50", "p95", "p99"], rows, numeric=(1, 2, 3)))
    if s.quality:
        rows = [
            (
                f"<code>{e(k)}</code>",
                num(v),
                num(s.training.get(k, "")),
                signed(v - s.training[k], is_lower_better(k)) if k in s.training else "",
            )
            for k, v in s.quality.items()
        ]
        out.append(
            f"<div>live quality on {s.labelled} labelled predictions</div>"
            + table(["metric", "live", "training", "Δ"], rows, numeric=(1, 2, 3))
        )
    else:
        out.append("<div>" + dim("no ground truth yet: <code>%mm_feedback NAME y_true</code>") + "</div>")
    if s.drift:
        rows = []
        for f, d in sorted(s.drift.items(), key=lambda kv: -(kv[1].get("psi") or 0)):
            value, ks_p = d.get("psi"), d.get("ks_p")
            shifted = value is not None and value > 0.2
            rows.append(
                (
                    e(f),
                    bad(f"{num(value)} ⚠") if shifted else (num(value) if value is not None else "—"),
                    num(ks_p) if ks_p is not None else "—",
                    num(int(d.get("n") or 0)),
                )
            )
        out.append(
            "<details><summary>drift per feature (PSI > 0.2 is a significant shift; judged from 100 rows, and "
            "under 1 000 only when the KS test agrees)</summary>"
            + table(["feature", "PSI", "KS p-value", "rows"], rows, numeric=(1, 2, 3))
            + "</details>"
        )
    if s.comparison is not None:
        out.append(_comparison(s.comparison))
    for a in s.alerts:
        out.append("<div>" + bad(f"⚠ {e(a['rule'])}: {e(a['message'])}") + "</div>")
    if s.sink:
        state = "connected" if s.sink.get("connected") else bad("✗ unreachable")
        why = f" ({e(s.sink['last_error'])})" if not s.sink.get("connected") and s.sink.get("last_error") else ""
        out.append("<div>" + dim(f"InfluxDB sink: {state}, {s.sink.get('spooled', 0)} points spooled{why}") + "</div>")
    return "".join(out)


@renders("mm_magics.engine.monitoring.compare", "Comparison")
def _comparison(c: Any) -> str:
    """Champion and challenger side by side: the verdict's metric (F1 or MAE) and, for a classifier, accuracy."""
    head = f"{e(c.mode)} <b>{e(c.challenger)}</b> beside <b>{e(c.champion)}</b>"
    if c.mode == "canary":
        head += f" ({c.percent:g} % of requests)"
    accuracy = any("accuracy" in s for s in c.sides.values())
    drift = any(s.get("drift") for s in c.sides.values())
    rows = []
    for vid, s in c.sides.items():
        row = [
            f"<b>{e(vid)}</b>",
            num(s["predicted"]),
            f"{s['share']:.0%}",
            f"{s['error_rate']:.1%}" if s["error_rate"] is not None else "—",
            num(s["p50_ms"]) if s["p50_ms"] is not None else "—",
            num(s["p95_ms"]) if s["p95_ms"] is not None else "—",
            num(s["quality"]) if s["quality"] is not None else "—",
        ]
        if accuracy:
            row.append(num(s["accuracy"]) if s.get("accuracy") is not None else "—")
        row.append(num(s["labelled"]))
        if drift:
            d = s.get("drift")
            row.append(f"{num(d['psi'])} {e(d['feature'])}" if d else dim("too few rows"))
        rows.append(row)
    headers = ["version", "predicted", "answered", "errors", "p50 ms", "p95 ms", c.metric]
    headers += ["accuracy", "labelled"] if accuracy else ["labelled"]
    numeric = range(1, len(headers))
    headers += ["worst drift (PSI)"] if drift else []
    out = [f"<div>{head}</div>", table(headers, rows, numeric=numeric)]
    if c.agreement is not None:
        out.append(f"<div>agreement on live traffic: {c.agreement:.1%} of {c.agreement_n} requests</div>")
    verdict = f"<b>{e(c.verdict)}</b>" if c.decided else dim(e(c.verdict))
    out.append(f"<div>verdict: {verdict}</div>")
    if c.rule:
        out.append(f"<div>promotion rule: {e(c.rule)}</div>")
    return "".join(out)


@renders("mm_magics.engine.monitoring.series", "Series")
def _series(s: Any) -> str:
    """Live series as text sparklines (the sparklines widget draws them; this is what survives without it)."""
    span = f"last {_duration(s.window_s)} in {s.step_s:g}s buckets"
    labels = {
        "rate": ("requests/s", ""),
        "errors": ("error share", ""),
        "p50": ("p50 server latency", " ms"),
        "p99": ("p99 server latency", " ms"),
        "processing": ("p50 processing", " ms"),
        "queue": ("p50 queue", " ms"),
        "overhead": ("p50 overhead", " ms"),
        "network": ("p50 network", " ms"),
        "quality": (f"live {s.quality_metric}", ""),
        "drift": ("worst PSI", ""),
    }
    rows = [
        (e(label), sparkline(s.columns.get(key, []), unit=unit, span=span))
        for key, (label, unit) in labels.items()
        if any(v is not None for v in s.columns.get(key, []))
    ]
    head = f"<b>{e(s.name)}</b> " + dim(e(s.version or "not deployed"))
    out = [head, table(["", span], rows) if rows else "<div>" + dim("no requests in the window") + "</div>"]
    for a in s.alerts:
        out.append("<div>" + bad(f"⚠ {e(a['rule'])}: {e(a['message'])}") + "</div>")
    return "".join(out)
