"""Small static charts for run and version outputs: ROC and precision–recall curves, residuals, a search's CV scores,
and a confusion-matrix heatmap.

Each chart is an SVG we draw ourselves (no plotting library to install), embedded as an ``<img>`` data URI: an image
keeps its drawing in an untrusted notebook (JupyterLab's sanitiser removes inline ``<svg>`` but checks no scheme on
an image's ``src``), in nbconvert's HTML and in a saved notebook opened later. An image cannot see the page's theme,
so it carries its own light background and colours that read on it, framed so it sits well in the dark theme too.
The heatmap is an HTML table with hex backgrounds (kept by the sanitiser) and the counts as text.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

INK, GRID, PAPER = "#24292f", "#d0d7de", "#ffffff"
BLUE, ORANGE, GREY = "#0969da", "#bc4c00", "#8c959f"


def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a + (v - lo) / ((hi - lo) or 1.0) * (b - a)


def _ticks(lo: float, hi: float) -> list[float]:
    return [lo, (lo + hi) / 2, hi]


def plot(
    series: Sequence[tuple[Sequence[float], Sequence[float], str, str, bool]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    zero_line: bool = False,
    legend_low: bool = False,
) -> str:
    """An SVG chart of ``series`` (xs, ys, label, colour, as_points), 320×240 user units with axes and ticks."""
    w, h, left, right, top, bottom = 320, 240, 44, 10, 24, 36
    xs_all = [x for s in series for x in s[0]] or [0.0, 1.0]
    ys_all = [y for s in series for y in s[1]] or [0.0, 1.0]
    x0, x1 = x_range or (min(xs_all), max(xs_all))
    y0, y1 = y_range or (min(ys_all), max(ys_all))
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    px = lambda v: _scale(v, x0, x1, left, w - right)  # noqa: E731
    py = lambda v: _scale(v, y0, y1, h - bottom, top)  # noqa: E731
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}' font-family='sans-serif' font-size='10'>",
        f"<rect width='{w}' height='{h}' rx='6' fill='{PAPER}' stroke='{GRID}'/>",
        f"<text x='{left}' y='15' fill='{INK}' font-size='11' font-weight='600'>{html.escape(title)}</text>",
    ]
    for t in _ticks(x0, x1):
        out.append(f"<line x1='{px(t):.1f}' x2='{px(t):.1f}' y1='{top}' y2='{h - bottom}' stroke='{GRID}'/>")
        out.append(f"<text x='{px(t):.1f}' y='{h - bottom + 12}' fill='{INK}' text-anchor='middle'>{t:.3g}</text>")
    for t in _ticks(y0, y1):
        out.append(f"<line x1='{left}' x2='{w - right}' y1='{py(t):.1f}' y2='{py(t):.1f}' stroke='{GRID}'/>")
        out.append(f"<text x='{left - 4}' y='{py(t) + 3:.1f}' fill='{INK}' text-anchor='end'>{t:.3g}</text>")
    out.append(f"<text x='{(left + w - right) / 2}' y='{h - 6}' fill='{INK}' text-anchor='middle'>{x_label}</text>")
    out.append(
        f"<text x='12' y='{(top + h - bottom) / 2}' fill='{INK}' text-anchor='middle' "
        f"transform='rotate(-90 12 {(top + h - bottom) / 2})'>{y_label}</text>"
    )
    if diagonal:
        out.append(
            f"<line x1='{px(x0):.1f}' y1='{py(y0):.1f}' x2='{px(x1):.1f}' y2='{py(y1):.1f}' stroke='{GREY}' "
            "stroke-dasharray='4 3'/>"
        )
    if zero_line and y0 < 0 < y1:
        out.append(f"<line x1='{left}' x2='{w - right}' y1='{py(0):.1f}' y2='{py(0):.1f}' stroke='{GREY}'/>")
    for i, (xs, ys, label, colour, as_points) in enumerate(series):
        pairs = list(zip(xs, ys, strict=True))
        if as_points:
            out += [f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='2' fill='{colour}'/>" for x, y in pairs]
        else:
            points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pairs)
            out.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{points}'/>")
        if label:  # top right, or bottom right where the curve runs along the top (precision-recall)
            y = h - bottom - 6 - 12 * (len(series) - 1 - i) if legend_low else top + 12 + 12 * i
            out.append(
                f"<text x='{w - right - 8}' y='{y}' fill='{colour}' text-anchor='end'>{html.escape(label)}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def image(svg: str, alt: str, width: int = 240) -> str:
    """The chart as an ``<img>`` (see the module's docstring for why not inline SVG); ``alt`` says it in words."""
    data = base64.b64encode(svg.encode()).decode()
    return (
        f"<img src='data:image/svg+xml;base64,{data}' width='{width}' alt='{html.escape(alt)}' "
        f"title='{html.escape(alt)}' style='margin:4px 8px 4px 0;vertical-align:top'>"
    )


def gallery(charts: list[tuple[str, str]]) -> str:
    """Charts side by side, small; the summary lists them in words and opens to the same charts twice as large."""
    if not charts:
        return ""
    small = "".join(image(svg, alt) for svg, alt in charts)
    large = "".join(image(svg, alt, width=480) for svg, alt in charts)
    names = " · ".join(html.escape(alt) for _, alt in charts)
    return f"<div>{small}</div><details><summary>larger: {names}</summary>{large}</details>"


def heat(count: int, top: int) -> tuple[str, str]:
    """Background and text colour of a heatmap cell: white to blue by share of the largest count, text in the
    colour that reads on it (the sanitiser keeps hex colours, so this survives an untrusted notebook)."""
    share = count / top if top else 0.0
    r, g, b = (round(255 + (c - 255) * share) for c in (9, 105, 218))
    return f"#{r:02x}{g:02x}{b:02x}", ("#ffffff" if share > 0.55 else "#24292f")
