"""The lifecycle graph as a static picture: stage boxes laid out left to right by the engine's layers, each with its
count of versions, edges labelled with their gates, and for a chosen version its stage and path highlighted and each
next move marked allowed (✓) or refused (✗).

An SVG image (see :mod:`.charts` for why an ``<img>``): it is what a notebook without a widget front end, an
untrusted copy, nbconvert and a saved notebook opened later show; the widget draws the same picture live.
"""

from __future__ import annotations

import html
from typing import Any

from . import charts
from .core import bad, dim, e, good, renders

BOX_W, BOX_H, GAP_X, GAP_Y, PAD, ARC, ARC_STEP = 118, 44, 46, 26, 16, 26, 14
ON_PATH, CURRENT, ALLOWED, REFUSED = "#ddf4ff", "#0969da", "#1a7f37", "#cf222e"


def positions(picture: Any) -> dict[str, tuple[float, float]]:
    """Top-left corner of every stage box: column by layer, rows centred within the tallest layer."""
    rows_in: dict[int, int] = {}
    for s in picture.stages:
        rows_in[s["layer"]] = rows_in.get(s["layer"], 0) + 1
    tallest = max(rows_in.values(), default=1)
    out = {}
    for s in picture.stages:
        offset = (tallest - rows_in[s["layer"]]) * (BOX_H + GAP_Y) / 2
        out[s["name"]] = (PAD + s["layer"] * (BOX_W + GAP_X), PAD + 18 + offset + s["row"] * (BOX_H + GAP_Y))
    return out


def svg(picture: Any) -> str:
    at = positions(picture)
    width = max((x for x, _ in at.values()), default=0) + BOX_W + PAD
    layers = {s["name"]: s["layer"] for s in picture.stages}
    spans = [layers[e["to"]] - layers[e["from"]] for e in picture.edges]
    deepest = max((ARC + ARC_STEP * (n - 2) for n in spans if n > 1), default=0)
    height = max((y for _, y in at.values()), default=0) + BOX_H + PAD + 14 + deepest
    verdict = {m["to"]: m["allowed"] for m in picture.moves}
    walked = set(picture.path)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' font-family='sans-serif' "
        "font-size='11'>",
        f"<rect width='{width:.0f}' height='{height:.0f}' rx='6' fill='{charts.PAPER}' stroke='{charts.GRID}'/>",
        "<defs><marker id='arrow' viewBox='0 0 8 8' refX='8' refY='4' markerWidth='7' markerHeight='7' "
        f"orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='{charts.GREY}'/></marker></defs>",
    ]
    layer = {s["name"]: s["layer"] for s in picture.stages}
    # next-layer edges run straight; an edge that skips layers arcs below the row (deeper the further it reaches) so
    # it never runs through the boxes it skips; the chosen version's moves are drawn last, on top
    for edge in sorted(picture.edges, key=lambda e: e["from"] == picture.stage):
        (x1, y1), (x2, y2) = at[edge["from"]], at[edge["to"]]
        span = layer[edge["to"]] - layer[edge["from"]]
        move = edge["from"] == picture.stage and edge["to"] in verdict
        colour = (ALLOWED if verdict[edge["to"]] else REFUSED) if move else charts.GREY
        if span > 1:
            depth = ARC + ARC_STEP * (span - 2)
            a, b = (x1 + BOX_W / 2 + 10, y1 + BOX_H), (x2 + BOX_W / 2 - 10, y2 + BOX_H)
            d = (
                f"M{a[0]:.1f},{a[1]:.1f} C{a[0]:.1f},{a[1] + depth:.1f} {b[0]:.1f},{b[1] + depth:.1f} "
                f"{b[0]:.1f},{b[1] + 2:.1f}"
            )
            lx, ly = (a[0] + b[0]) / 2, max(a[1], b[1]) + depth * 0.75 + 4
        else:
            a, b = (x1 + BOX_W, y1 + BOX_H / 2), (x2, y2 + BOX_H / 2)
            mx = (a[0] + b[0]) / 2
            d = f"M{a[0]:.1f},{a[1]:.1f} C{mx:.1f},{a[1]:.1f} {mx:.1f},{b[1]:.1f} {b[0]:.1f},{b[1]:.1f}"
            lx, ly = mx, (a[1] + b[1]) / 2 - 5
        dash = " stroke-dasharray='6 3'" if move and not verdict[edge["to"]] else ""
        out.append(
            f"<path d='{d}' fill='none' stroke='{colour}' stroke-width='{2.5 if move else 1.2}'{dash} "
            "marker-end='url(#arrow)'/>"
        )
        if edge["gates"]:
            label = f"{len(edge['gates'])} gate{'s' if len(edge['gates']) > 1 else ''}"
            out.append(
                f"<text x='{lx:.1f}' y='{ly:.1f}' fill='{charts.INK}' font-size='9' text-anchor='middle'>"
                f"<title>{html.escape('; '.join(edge['gates']))}</title>{label}</text>"
            )
    for s in picture.stages:
        x, y = at[s["name"]]
        current = s["name"] == picture.stage
        fill = ON_PATH if s["name"] in walked else charts.PAPER
        mark = ""
        if s["name"] in verdict:
            mark = " ✓" if verdict[s["name"]] else " ✗"
        out.append(
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{BOX_W}' height='{BOX_H}' rx='8' fill='{fill}' "
            f"stroke='{CURRENT if current else charts.GRID}' stroke-width='{3 if current else 1}'/>"
            f"<text x='{x + BOX_W / 2:.1f}' y='{y + 18:.1f}' fill='{charts.INK}' font-weight='600' "
            f"text-anchor='middle'>{html.escape(s['name'])}{mark}</text>"
            f"<text x='{x + BOX_W / 2:.1f}' y='{y + 34:.1f}' fill='{charts.INK}' text-anchor='middle'>"
            f"{s['count']} version{'' if s['count'] == 1 else 's'}</text>"
        )
    title = f"{picture.model}: lifecycle" + (f" of {picture.version}" if picture.version else "")
    out.append(f"<text x='{PAD}' y='{PAD + 2}' fill='{charts.INK}' font-weight='600'>{html.escape(title)}</text>")
    out.append("</svg>")
    return "".join(out)


def moves_html(picture: Any) -> str:
    """Each next stage of the chosen version in words: allowed, or the gates that refuse it and by how much."""
    items = []
    for m in picture.moves:
        if m["allowed"]:
            items.append(f"<li>{good('✓ ' + e(m['to']))}: allowed</li>")
        else:
            why = "; ".join(f"{e(r['gate'])} — {e(r['detail'])}" for r in m["refused"]) or e(m.get("reason", ""))
            items.append(f"<li>{bad('✗ ' + e(m['to']))}: {why}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


@renders("mm_magics.engine.records", "LifecyclePicture")
def _picture(p: Any) -> str:
    where = f" · {e(p.version)} is in <b>{e(p.stage)}</b>" if p.version else ""
    alt = str(p).splitlines()[0]
    return (
        f"<b>{e(p.model)}</b> " + dim("lifecycle" + where) + f"<div>{charts.image(svg(p), alt, width=760)}</div>"
        + moves_html(p)
    )  # fmt: skip
