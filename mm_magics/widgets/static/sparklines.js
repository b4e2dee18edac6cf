// Live sparklines: one small SVG chart per metric with its current value, reference lines (training value, alert
// threshold), the latency p50 split stacked under the p99 line, and open alerts with their advice. New buckets
// arrive as messages and are appended in place (the window slides); nothing is redrawn from the kernel's state.
const SVG = "http://www.w3.org/2000/svg";
const W = 220, H = 44, PAD = 2;
const SPLIT = [["processing", "proc"], ["queue", "queue"], ["overhead", "overhead"], ["network", "network"]];

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
  const ref = spec.ref ? reference[spec.ref] : null;
  let lo = Infinity, hi = -Infinity;
  for (const k of lines) for (const v of columns[k] || []) if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
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
  return svg;
}

function card(spec, data) {
  const box = h("div", "mm-sp-card");
  const key = spec.key === "latency" ? "p99" : spec.key;
  const now = last(data.columns[key] || []);
  const ref = spec.ref ? data.reference[spec.ref] : null;
  const beyond = ref !== null && ref !== undefined && now !== null &&
    (spec.key === "quality" ? (spec.lower ? now > ref : now < ref) : now > ref);
  const shown = spec.percent && now !== null ? `${(now * 100).toFixed(1)} %` : fmt(now, spec.unit);
  const value = h("span", `mm-sp-value${beyond && spec.key !== "quality" ? " warn" : ""}`,
    `${shown}${beyond && spec.key !== "quality" ? " ⚠" : ""}`);
  const head = h("div", "mm-sp-head");
  head.append(h("span", "mm-sp-title", spec.title), value);
  const lines = spec.key === "latency" ? ["p99"] : [spec.key];
  const empty = !lines.some((k) => (data.columns[k] || []).some((v) => v !== null && v !== undefined));
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
    notes.push(spec.key === "quality" ? `- - training ${fmt(ref)}` : spec.key === "drift" ? `- - alert above ${fmt(ref)}`
      : `- - alert above ${fmt(ref, spec.unit)}`);
  }
  if (notes.length) box.append(h("div", "mm-sp-note", notes.join(" · ")));
  box.setAttribute("aria-label", `${spec.title}: ${shown}`);
  return box;
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
    const alerts = model.get("alerts") || [];
    const list = h("ul", "mm-sp-alerts");
    list.setAttribute("aria-label", "open alerts");
    for (const a of alerts) list.append(h("li", "warn", `⚠ ${a.rule}: ${a.message}`));
    if (!alerts.length) list.append(h("li", "mm-sp-dim", "no open alerts"));
    root.replaceChildren(head, grid, list);
    root.dataset.points = String(data.t.length);
  };
  const slide = (msg) => {
    if (msg.kind === "window") { data = structuredClone(msg.series); draw(); return; }
    if (msg.kind !== "points") return;
    const cut = msg.t[msg.t.length - 1] - data.window_s;
    let keep = 0;
    while (keep < data.t.length && data.t[keep] <= cut) keep++;
    data.t = data.t.slice(keep).concat(msg.t);
    for (const [k, col] of Object.entries(msg.columns)) data.columns[k] = (data.columns[k] || []).slice(keep).concat(col);
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
