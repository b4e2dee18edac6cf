// Live sparklines: one small SVG chart per metric with its current value, reference lines (training value, alert
// threshold), the latency p50 split stacked under the p99 line, and open alerts with their advice. During a canary
// or shadow release (series.challenger) the candidate's line is drawn on the same axes, dashed and in a second
// colour, with a legend naming both versions and both values beside each chart (drift stays the champion's).
// New buckets arrive as messages and are appended in place (the window slides); nothing is redrawn from the
// kernel's state.
const SVG = "http://www.w3.org/2000/svg";
const W = 220, H = 44, PAD = 2;
const SPLIT = [["processing", "proc"], ["queue", "queue"], ["overhead", "overhead"], ["network", "network"]];
// the column a card draws as its line, which a challenger draws too (none: champion only)
const MAIN = { rate: "rate", latency: "p99", errors: "errors", quality: "quality", drift: "drift" };
const DRAWN_FOR_CHALLENGER = new Set(["rate", "latency", "errors", "quality"]);

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(v, unit = "") {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (v === 0) return `0${unit}`;
  const a = Math.abs(v);
  return `${a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3)}${unit}`;
}

function short(vid) {
  return vid ? String(vid).split("@").pop() : "—";
}

// "canary 10 %" or "shadow": what the challenger is
function role(ch) {
  return ch.mode === "canary" ? `canary ${+(Number(ch.percent) || 0).toFixed(1)} %` : String(ch.mode || "candidate");
}

// the challenger's column for a card, when there is a challenger and the card draws one
function theirs(spec, data) {
  if (!data.challenger || !DRAWN_FOR_CHALLENGER.has(spec.key)) return null;
  return (data.challenger.columns || {})[MAIN[spec.key]] || [];
}

function last(column) {
  for (let i = column.length - 1; i >= 0; i--) if (column[i] !== null && column[i] !== undefined) return column[i];
  return null;
}

// the metrics drawn, in order: key, title, unit, reference key, whether lower is better
function cards(series) {
  const q = series.quality_metric || "accuracy";
  return [
    { key: "rate", title: "requests/s", unit: "" },
    { key: "latency", title: "latency p99", unit: " ms", ref: "p99", lower: true },
    { key: "errors", title: "error share", unit: "", percent: true, lower: true },
    { key: "quality", title: `live ${q}`, unit: "", ref: "quality", lower: q === "mae" },
    { key: "drift", title: "worst feature drift (PSI)", unit: "", ref: "drift", lower: true },
  ];
}

function path(t, values, x, y) {
  let d = "", open = false;
  for (let i = 0; i < t.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) { open = false; continue; }
    d += `${open ? "L" : "M"}${x(t[i]).toFixed(1)},${y(v).toFixed(1)}`;
    open = true;
  }
  return d;
}

function chart(spec, data) {
  const { t, columns, reference } = data;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "mm-sp-chart", role: "img" });
  if (!t.length) return svg;
  const t0 = t[0], t1 = t[t.length - 1] || t0 + 1;
  const x = (v) => PAD + ((v - t0) / Math.max(t1 - t0, 1e-9)) * (W - 2 * PAD);
  const lines = spec.key === "latency" ? ["p99", "p50"] : [spec.key];
  const other = theirs(spec, data);
  const ref = spec.ref ? reference[spec.ref] : null;
  let lo = Infinity, hi = -Infinity;
  for (const col of [...lines.map((k) => columns[k] || []), other || []]) {  // one scale for both versions
    for (const v of col) if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  if (spec.key === "latency" && ref !== null && hi < ref * 0.5) { /* keep the p99 rule out of view when far away */ }
  else if (ref !== null && ref !== undefined) { lo = Math.min(lo, ref); hi = Math.max(hi, ref); }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (spec.key === "rate" || spec.key === "errors" || spec.key === "latency") lo = Math.min(lo, 0);
  const span = hi - lo || Math.abs(hi) || 1;
  const y = (v) => H - PAD - ((v - lo) / span) * (H - 2 * PAD);
  if (spec.key === "latency") {  // the p50 split, stacked
    const base = new Array(t.length).fill(0);
    SPLIT.forEach(([k], s) => {
      const col = columns[k] || [];
      if (!col.some((v) => v !== null && v !== undefined)) return;
      let top = "", bottom = "";
      for (let i = 0; i < t.length; i++) {
        const v = Math.max(0, col[i] || 0);
        top += `${i ? "L" : "M"}${x(t[i]).toFixed(1)},${y(base[i] + v).toFixed(1)}`;
        bottom = `L${x(t[i]).toFixed(1)},${y(base[i]).toFixed(1)}` + bottom;
        base[i] += v;
      }
      svg.append(el("path", { d: `${top}${bottom}Z`, class: `mm-sp-area s${s}` }));
    });
  }
  if (ref !== null && ref !== undefined && y(ref) >= 0 && y(ref) <= H) {
    svg.append(el("line", { x1: 0, x2: W, y1: y(ref), y2: y(ref), class: "mm-sp-ref" }));
  }
  for (const k of lines) {
    svg.append(el("path", { d: path(t, columns[k] || [], x, y), class: `mm-sp-line ${k === "p50" ? "thin" : ""}` }));
  }
  if (other) svg.append(el("path", { d: path(t, other, x, y), class: "mm-sp-line challenger" }));
  return svg;
}

function shownValue(spec, v) {
  return spec.percent && v !== null ? `${(v * 100).toFixed(1)} %` : fmt(v, spec.unit);
}

function card(spec, data) {
  const box = h("div", "mm-sp-card");
  const now = last(data.columns[MAIN[spec.key]] || []);
  const other = theirs(spec, data);
  const ref = spec.ref ? data.reference[spec.ref] : null;
  const beyond = (v) => spec.key !== "quality" && ref !== null && ref !== undefined && v !== null && v > ref;
  const value = h("span", "mm-sp-value");
  const say = (v, cls, who) => {
    const part = h("span", `${cls}${beyond(v) ? " warn" : ""}`, `${who}${shownValue(spec, v)}${beyond(v) ? " ⚠" : ""}`);
    value.append(part);
    return `${who}${shownValue(spec, v)}`;
  };
  let label = say(now, "mm-sp-mine", other ? `${short(data.version)} ` : "");
  if (other) {
    value.append(" · ");
    label += `, ${say(last(other), "mm-sp-theirs", `${short(data.challenger.version)} `)}`;
  }
  const head = h("div", "mm-sp-head");
  head.append(h("span", "mm-sp-title", spec.title), value);
  const lines = spec.key === "latency" ? ["p99"] : [spec.key];
  const cols = [...lines.map((k) => data.columns[k] || []), other || []];
  const empty = !cols.some((col) => col.some((v) => v !== null && v !== undefined));
  if (empty) {
    const why = { quality: "no labels yet: %mm_feedback NAME y_true", drift: "too few rows yet to judge drift",
      latency: "no requests answered yet", errors: "no requests yet" }[spec.key] || "no data yet";
    box.append(head, h("div", "mm-sp-empty", why));
  } else {
    box.append(head, chart(spec, data));
  }
  const notes = [];
  if (spec.key === "latency") {
    const parts = SPLIT.filter(([k]) => last(data.columns[k] || []) !== null).map(([k, label]) => `${label} ${fmt(last(data.columns[k]))}`);
    notes.push(`p50 ${fmt(last(data.columns.p50 || []), " ms")} = ${parts.join(" + ") || "—"} (stacked)`);
  }
  if (ref !== null && ref !== undefined) {
    const whose = data.challenger && spec.key === "quality" ? ` of ${short(data.version)}` : "";
    notes.push(spec.key === "quality" ? `- - training${whose} ${fmt(ref)}` : spec.key === "drift"
      ? `- - alert above ${fmt(ref)}` : `- - alert above ${fmt(ref, spec.unit)}`);
  }
  if (data.challenger && !other) notes.push(`${short(data.version)} only`);
  if (notes.length) box.append(h("div", "mm-sp-note", notes.join(" · ")));
  box.setAttribute("aria-label", `${spec.title}: ${label}`);
  return box;
}

// which line is which: the champion solid, the challenger dashed (a cue beside the colour)
function legend(data) {
  const box = h("div", "mm-sp-legend");
  box.setAttribute("aria-label", "lines");
  const item = (cls, vid, what) => {
    const span = h("span", "mm-sp-key");
    const svg = el("svg", { viewBox: "0 0 24 8", width: 24, height: 8, "aria-hidden": "true" });
    svg.append(el("line", { x1: 0, x2: 24, y1: 4, y2: 4, class: `mm-sp-line ${cls}` }));
    span.append(svg, h("span", "", `${vid} ${what}`));
    return span;
  };
  box.append(item("", data.version, "champion"), item("challenger", data.challenger.version, role(data.challenger)));
  return box;
}

// slide columns (had buckets long) past the first keep buckets and append n new ones; a column on one side only is
// a gap (null) on the other, so every column stays as long as t
function append(columns, incoming, had, keep, n) {
  for (const k of new Set([...Object.keys(columns), ...Object.keys(incoming)])) {
    const old = columns[k] || new Array(had).fill(null);
    columns[k] = old.slice(keep).concat(incoming[k] || new Array(n).fill(null));
  }
}

function render({ model, el: root }) {
  root.classList.add("mm-sparklines");
  let data = structuredClone(model.get("series") || {});
  const draw = () => {
    const head = h("div", "mm-sp-state");
    const state = model.get("state");
    head.textContent = state || `${data.name} (${data.version || "not deployed"}) · last ${Math.round(data.window_s / 60)} min`;
    if (state) head.classList.add(model.get("live") ? "live" : "stopped");
    const grid = h("div", "mm-sp-grid");
    for (const spec of cards(data)) grid.append(card(spec, data));
    const parts = data.challenger ? [head, legend(data), grid] : [head, grid];
    const alerts = model.get("alerts") || [];
    const list = h("ul", "mm-sp-alerts");
    list.setAttribute("aria-label", "open alerts");
    for (const a of alerts) list.append(h("li", "warn", `⚠ ${a.rule}: ${a.message}`));
    if (!alerts.length) list.append(h("li", "mm-sp-dim", "no open alerts"));
    root.replaceChildren(...parts, list);
    root.dataset.points = String(data.t.length);
  };
  const slide = (msg) => {
    if (msg.kind === "window") { data = structuredClone(msg.series); draw(); return; }
    if (msg.kind !== "points") return;
    const cut = msg.t[msg.t.length - 1] - data.window_s;
    const had = data.t.length, n = msg.t.length;
    let keep = 0;
    while (keep < data.t.length && data.t[keep] <= cut) keep++;
    data.t = data.t.slice(keep).concat(msg.t);
    append(data.columns, msg.columns, had, keep, n);
    if (msg.challenger) {  // a release: its columns slide with the champion's (gaps before it began)
      data.challenger = { ...msg.challenger, columns: data.challenger ? data.challenger.columns : {} };
      append(data.challenger.columns, msg.challenger.columns, had, keep, n);
    } else if (data.challenger) {
      append(data.challenger.columns, {}, had, keep, n);
    }
    data.version = msg.version;
    draw();
  };
  model.on("msg:custom", slide);
  model.on("change:alerts", draw);
  model.on("change:state", draw);
  let onScreen = true;
  const seen = new IntersectionObserver((entries) => { onScreen = entries.some((e) => e.isIntersecting); });
  seen.observe(root);
  const every = model.get("poll_s");
  const timer = every > 0 ? setInterval(() => {
    if (root.isConnected && onScreen && !document.hidden) model.send({ kind: "poll" });
  }, every * 1000) : null;
  draw();
  model.send({ kind: "hello" });
  return () => {
    if (timer) clearInterval(timer);
    seen.disconnect();
    model.off("msg:custom", slide); model.off("change:alerts", draw); model.off("change:state", draw);
  };
}

export default { render };
