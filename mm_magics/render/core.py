"""The HTML face's parts: the renderer registry, escaping, theme-aware inline styles, tables, marks, sparklines."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

# Colours come from JupyterLab's theme variables (so they follow the light and dark themes), with a fallback for other
# front ends. Everything is an inline style: no global <style> (which JupyterLab's sanitiser strips from an untrusted
# notebook, and which leaked into every other open notebook), and text-align on each cell beats JupyterLab's
# right-aligned table rule. The sanitiser also drops var() values, so meaning never rests on colour: every good or bad
# mark carries a text marker (✓ ✗ ⚠), and the sparklines are text, which survives any sanitiser and nbconvert.
DIM = "var(--jp-content-font-color2,#57606a)"
# green and red mixed a quarter toward the text colour: darker on the light theme, lighter on the dark one, so both
# reach AA on either background (measured in tests/e2e/test_browser.py; no single theme variable does)
GOOD = "color-mix(in srgb,var(--jp-success-color1,#1a7f37) 70%,var(--jp-content-font-color0,#000))"
BAD = "color-mix(in srgb,var(--jp-error-color1,#cf222e) 75%,var(--jp-content-font-color0,#000))"
TAG = "background:var(--jp-layout-color2,rgba(127,127,127,.16));color:var(--jp-content-font-color1,inherit)"
BOX = "font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.45"
CELL = "text-align:left;vertical-align:top;padding:2px 14px 2px 0;border:none"
NUMERIC = "text-align:right;vertical-align:top;padding:2px 14px 2px 0;border:none;font-variant-numeric:tabular-nums"
RECORDS = "mm_magics.engine.records"
#: Every engine record a face displays, by (module, class): its HTML renderer, or None for its text in a <pre>.
_RENDERERS: dict[tuple[str, str], Callable[[Any], str] | None] = {
    (RECORDS, name): None for name in ("ModelSummary", "AliasChange", "AuditEntry", "FsckReport", "CheckedOut")
}


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
    return f"<div class='mm' style='{BOX}'>{body}</div>"


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


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()) -> str:
    """A compact table, left-aligned except the ``numeric`` columns (right-aligned so digits line up)."""
    right, headers = set(numeric), list(headers)
    head = "".join(
        f"<th style='{NUMERIC if i in right else CELL};font-weight:600'>{e(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(f"<td style='{NUMERIC if i in right else CELL}'>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""  # a card (label: value) has no header row
    return f"<table style='border-collapse:collapse;margin:4px 0;width:auto'>{thead}<tbody>{body}</tbody></table>"


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics in the one order every output uses (headline metrics first, then by name)."""
    from ..engine.metrics import ordered

    found = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not k.endswith("_std")}
    return {k: found[k] for k in ordered(found)}


def dim(content: str) -> str:
    return f"<span style='color:{DIM}'>{content}</span>"


def good(content: str) -> str:
    return f"<span style='color:{GOOD}'>{content}</span>"


def bad(content: str) -> str:
    return f"<span style='color:{BAD}'>{content}</span>"


def mark(passed: bool, content: str) -> str:
    """A check that passed or failed: colour where the theme allows it, and always a marker that says it."""
    return good(f"✓ {content}") if passed else bad(f"✗ {content}")


def tags(items: Iterable[str]) -> str:
    style = f"display:inline-block;padding:0 6px;margin-right:4px;border-radius:8px;font-size:12px;{TAG}"
    return "".join(f"<span style='{style}'>{e(i)}</span>" for i in items)


def signed(delta: float | None, lower_better: bool = False) -> str:
    """A delta with its sign, coloured and marked ✓ (better) or ✗ (worse), so it reads without colour too."""
    if delta is None:
        return ""
    if abs(delta) < 1e-12:
        return dim("±0")
    better = (delta < 0) if lower_better else (delta > 0)
    return (good if better else bad)(f"{delta:+.4g} {'✓' if better else '✗'}")


BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], *, unit: str = "", span: str = "") -> str:
    """A text sparkline with its range and time span: an empty bucket (None) is a gap, not a zero. Text survives an
    untrusted notebook, nbconvert and a terminal; the widgets draw the interactive version."""
    known = [v for v in values if v is not None]
    if not known:
        return dim("no data yet")
    low, high = min(known), max(known)
    scale = (high - low) or 1.0
    line = "".join(" " if v is None else BLOCKS[int((v - low) / scale * (len(BLOCKS) - 1))] for v in values)
    return f"<code style='letter-spacing:0;background:none'>{e(line)}</code> " + dim(
        f"min {low:.3g}{unit} max {high:.3g}{unit}{' · ' + e(span) if span else ''}"
    )


def is_lower_better(metric: str) -> bool:
    from ..engine.lifecycle import lower_is_better

    return lower_is_better(metric)
