// The version timeline: every version of a model on a time (or version-number) axis, one lane per branch of the
// version DAG, stage as colour *and* shape, aliases and the serving version as badges, a rollback linked to its
// source, and one metric as a line under the lanes. Drawn on a canvas, only what is in view, so 10 000 versions
// stay smooth; theme colours are read from JupyterLab's CSS variables at each draw (light and dark themes).
// The kernel sends the columnar payload once; later changes arrive as patches answering a poll this view sends
// while it is on screen. Selecting a version asks the kernel for its details; actions are confirmed here and done
// there, one engine call each.
const LANE_H = 24, TOP = 26, STRIP_H = 64, AXIS_H = 22, PAD_L = 12, PAD_R = 12, MAX_LANES = 10;
// Okabe-Ito hues (distinguishable with the common colour-vision deficiencies), and a shape per stage besides.
const HUES = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C8C8C", "#F0E442"];
const SHAPES = ["circle", "square", "diamond", "triangle", "hexagon", "cross"];
const CODES = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// -- the data: decoded columns, patched in place ----------------------------------------------------------------
class Versions {
  constructor(payload) { this.reset(payload); }

  reset(p) {
    this.number = []; this.parent = []; this.created = []; this.stage = []; this.value = []; this.rollback = [];
    this.at = new Map();
    this.meta(p);
    this.merge(p);
  }

  meta(p) {
    this.model = p.model; this.head = p.head; this.metric = p.metric; this.metrics = p.metrics || [];
    this.aliases = p.aliases || {};
  }

  merge(p) {
    const count = (p.stage || "").length;
    const numbers = p.numbers || Array.from({ length: count }, (_, i) => (p.first || 1) + i);
    let t = 0, appended = false;
    for (let i = 0; i < count; i++) {
      const n = numbers[i];
      t = p.full ? t + p.created[i] : p.created[i];
      const row = [n, p.parent[i] ? n - p.parent[i] : null, t, p.stages[CODES.indexOf(p.stage[i])], p.value[i],
        p.rollbacks[String(n)] || null];
      let k = this.at.get(n);
      if (k === undefined) { k = this.number.length; this.at.set(n, k); appended = true; }
      [this.number[k], this.parent[k], this.created[k], this.stage[k], this.value[k], this.rollback[k]] = row;
    }
    if (appended && this.number.some((n, i) => i && n < this.number[i - 1])) this.sortByNumber();
    this.layout();
  }

  sortByNumber() {
    const order = this.number.map((_, i) => i).sort((a, b) => this.number[a] - this.number[b]);
    for (const col of ["number", "parent", "created", "stage", "value", "rollback"]) {
      this[col] = order.map((i) => this[col][i]);
    }
    this.at = new Map(this.number.map((n, i) => [n, i]));
  }

  // One lane per branch: a version continues its parent's lane when its parent is that lane's tip, else opens one.
  layout() {
    const tips = [];
    this.lane = new Array(this.number.length);
    for (let i = 0; i < this.number.length; i++) {
      const p = this.parent[i] === null ? undefined : this.at.get(this.parent[i]);
      // a version without a parent (committed without --from) stays on the main line, unlinked; a version whose
      // parent is not the tip of a lane starts a branch
      let lane = p === undefined ? 0 : tips.indexOf(this.number[p]);
      if (lane < 0) lane = tips.length;
      tips[lane] = this.number[i];
      this.lane[i] = Math.min(lane, MAX_LANES - 1);
    }
    this.lanes = Math.max(1, Math.min(MAX_LANES, tips.length));
  }

  get length() { return this.number.length; }
}

// -- the view: which x axis, what is in view --------------------------------------------------------------------
class View {
  constructor(data, mode) { this.data = data; this.mode = mode; this.refit(true); }

  x(i) { return this.mode === "time" ? this.data.created[i] : this.data.number[i]; }

  refit(reset) {
    const n = this.data.length;
    this.order = Array.from({ length: n }, (_, i) => i);
    if (this.mode === "time") this.order.sort((a, b) => this.x(a) - this.x(b));
    this.xs = Float64Array.from(this.order, (i) => this.x(i));
    const lo = n ? this.xs[0] : 0, hi = n ? this.xs[n - 1] : 1;
    const pad = Math.max((hi - lo) * 0.03, this.mode === "time" ? 1 : 0.5);
    const before = this.extent;
    this.extent = [lo - pad, hi + pad];
    if (reset || !this.span || !before) { this.span = [...this.extent]; return; }
    // a view that showed everything keeps showing everything; one that showed the newest end follows new versions
    if (this.span[0] <= before[0] && this.span[1] >= before[1]) this.span = [...this.extent];
    else if (this.span[1] >= before[1]) this.pan(this.extent[1] - this.span[1]);
  }

  // indices (into order) of the versions between x0 and x1: binary search, so a zoomed-in view of 10 000
  // versions touches only the few it draws
  visible(margin) {
    const [x0, x1] = this.span, m = (x1 - x0) * margin;
    const find = (v) => { let a = 0, b = this.xs.length; while (a < b) { const c = (a + b) >> 1; if (this.xs[c] < v) a = c + 1; else b = c; } return a; };
    return [find(x0 - m), find(x1 + m)];
  }

  zoom(factor, at) {
    const [x0, x1] = this.span, c = at ?? (x0 + x1) / 2;
    const min = this.mode === "time" ? 0.5 : 0.6; // zoomed all the way in: about one version in view
    const w = Math.max((x1 - x0) * factor, min);
    this.span = [c - (c - x0) * (w / (x1 - x0)), c + (x1 - c) * (w / (x1 - x0))];
  }

  pan(dx) { this.span = [this.span[0] + dx, this.span[1] + dx]; }
}

function themeColours(root) {
  const css = getComputedStyle(root);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    text: v("--jp-content-font-color1", "#24292f"), dim: v("--jp-content-font-color2", "#57606a"),
    faint: v("--jp-border-color2", "#d0d7de"), line: v("--jp-content-font-color3", "#8c959f"),
    bg: v("--jp-layout-color1", "#ffffff"), brand: v("--jp-brand-color1", "#1976d2"),
    font: v("--jp-ui-font-family", "system-ui, sans-serif"),
  };
}

function shape(ctx, kind, x, y, r) {
  ctx.beginPath();
  if (kind === "square") ctx.rect(x - r, y - r, 2 * r, 2 * r);
  else if (kind === "diamond") { ctx.moveTo(x, y - r * 1.3); ctx.lineTo(x + r * 1.3, y); ctx.lineTo(x, y + r * 1.3); ctx.lineTo(x - r * 1.3, y); ctx.closePath(); }
  else if (kind === "triangle") { ctx.moveTo(x, y - r * 1.3); ctx.lineTo(x + r * 1.2, y + r); ctx.lineTo(x - r * 1.2, y + r); ctx.closePath(); }
  else if (kind === "hexagon") { for (let k = 0; k < 6; k++) { const a = Math.PI / 3 * k; ctx.lineTo(x + r * 1.15 * Math.cos(a), y + r * 1.15 * Math.sin(a)); } ctx.closePath(); }
  else if (kind === "cross") { ctx.rect(x - r, y - r / 3, 2 * r, 2 * r / 3); ctx.rect(x - r / 3, y - r, 2 * r / 3, 2 * r); }
  else ctx.arc(x, y, r, 0, 2 * Math.PI);
}

function ticks(x0, x1, mode, count) {
  if (mode !== "time") {
    const step = Math.max(1, Math.ceil((x1 - x0) / count));
    const out = [];
    for (let v = Math.ceil(x0 / step) * step; v <= x1; v += step) out.push([v, `v${v}`]);
    return out;
  }
  const steps = [1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400];
  const step = steps.find((s) => (x1 - x0) / s <= count) || steps[steps.length - 1];
  const out = [];
  for (let v = Math.ceil(x0 / step) * step; v <= x1; v += step) {
    const d = new Date(v * 1000);
    const label = step >= 86400 ? d.toLocaleDateString() : step >= 60 ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleTimeString();
    out.push([v, label]);
  }
  return out;
}

function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? v.toLocaleString() : String(Number(v.toPrecision(4)));
}

// Time when the versions in it can be told apart at the fitted zoom; by version number when commits came seconds
// apart (a notebook run, a sweep), where a time axis would stack them on one spot.
function bestMode(data, width) {
  if (data.length < 2) return "time";
  const xs = [...data.created].sort((a, b) => a - b);
  const span = xs[xs.length - 1] - xs[0] || 1;
  let close = 0;
  for (let i = 1; i < xs.length; i++) if (((xs[i] - xs[i - 1]) / span) * width < 10) close++;
  return close > xs.length / 4 ? "number" : "time";
}

// -- drawing ----------------------------------------------------------------------------------------------------
function drawCanvas(ui) {
  const { canvas, data, view, state } = ui;
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(320, ui.plot.clientWidth || 640);
  const lanesH = data.lanes * LANE_H;
  const height = TOP + lanesH + STRIP_H + AXIS_H;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const c = themeColours(ui.root);
  ctx.clearRect(0, 0, width, height);
  const [x0, x1] = view.span;
  const px = (v) => PAD_L + ((v - x0) / (x1 - x0)) * (width - PAD_L - PAD_R);
  const laneY = (lane) => TOP + lane * LANE_H + LANE_H / 2;
  ui.px = px; ui.laneY = laneY; ui.width = width;
  const [lo, hi] = view.visible(0.05);
  const shown = hi - lo;
  const dense = shown > (width - PAD_L - PAD_R) / 4;
  const colourOf = (stage) => HUES[Math.max(0, state.stages.indexOf(stage)) % HUES.length];
  const shapeOf = (stage) => SHAPES[Math.max(0, state.stages.indexOf(stage)) % SHAPES.length];

  // axis and grid
  ctx.font = `11px ${c.font}`; ctx.textBaseline = "middle";
  ctx.strokeStyle = c.faint; ctx.fillStyle = c.dim; ctx.lineWidth = 1;
  for (const [v, label] of ticks(x0, x1, view.mode, Math.max(2, Math.floor(width / 110)))) {
    const x = px(v);
    ctx.beginPath(); ctx.moveTo(x, TOP - 4); ctx.lineTo(x, height - AXIS_H); ctx.stroke();
    const half = ctx.measureText(label).width / 2 + 2;
    if (x - half < 0 || x + half > width) continue; // a label cut by the edge reads wrong: leave it out
    ctx.textAlign = "center"; ctx.fillText(label, x, height - AXIS_H / 2);
  }

  // parent edges (one path), then rollback links (dashed)
  ctx.strokeStyle = c.line; ctx.lineWidth = dense ? 1 : 1.5;
  ctx.beginPath();
  for (let k = lo; k < hi; k++) {
    const i = view.order[k], p = data.parent[i] === null ? undefined : data.at.get(data.parent[i]);
    if (p === undefined) continue;
    const xa = px(view.x(p)), ya = laneY(data.lane[p]), xb = px(view.x(i)), yb = laneY(data.lane[i]);
    ctx.moveTo(xa, ya);
    if (ya === yb) ctx.lineTo(xb, yb); else ctx.bezierCurveTo((xa + xb) / 2, ya, (xa + xb) / 2, yb, xb, yb);
  }
  ctx.stroke();
  ctx.setLineDash([4, 3]); ctx.strokeStyle = c.brand;
  ctx.beginPath();
  for (let k = lo; k < hi; k++) {
    const i = view.order[k], src = data.rollback[i] === null ? undefined : data.at.get(data.rollback[i]);
    if (src === undefined) continue;
    const xa = px(view.x(src)), ya = laneY(data.lane[src]) - 6, xb = px(view.x(i)), yb = laneY(data.lane[i]) - 6;
    ctx.moveTo(xa, ya); ctx.bezierCurveTo(xa, ya - 16, xb, yb - 16, xb, yb);
  }
  ctx.stroke(); ctx.setLineDash([]);

  // versions: stage colour and shape
  const r = dense ? 2 : 4.5;
  for (let k = lo; k < hi; k++) {
    const i = view.order[k], x = px(view.x(i)), y = laneY(data.lane[i]);
    ctx.fillStyle = colourOf(data.stage[i]);
    if (dense) ctx.fillRect(x - 1, y - 3, 2, 6);
    else { shape(ctx, shapeOf(data.stage[i]), x, y, r); ctx.fill(); ctx.strokeStyle = c.bg; ctx.lineWidth = 1; ctx.stroke(); }
  }

  // version numbers under the marks, when there is room for them
  if (shown && (width - PAD_L - PAD_R) / shown >= 26) {
    ctx.fillStyle = c.dim; ctx.font = `10px ${c.font}`; ctx.textAlign = "center";
    for (let k = lo; k < hi; k++) {
      const i = view.order[k];
      ctx.fillText(`v${data.number[i]}`, px(view.x(i)), laneY(data.lane[i]) + 11);
    }
  }

  // badges: aliases and the serving version, where they are in view
  const badges = new Map();
  for (const [alias, n] of Object.entries(data.aliases)) badges.set(n, [...(badges.get(n) || []), `@${alias}`]);
  const serving = state.serving.version ? Number(state.serving.version.split("@v")[1]) : null;
  if (serving !== null) badges.set(serving, [`▶ serving${state.serving.status && state.serving.status !== "running" ? ` (${state.serving.status})` : ""}`, ...(badges.get(serving) || [])]);
  ctx.font = `10px ${c.font}`; ctx.textAlign = "left";
  for (const [n, labels] of badges) {
    const i = data.at.get(n);
    if (i === undefined) continue;
    const x = px(view.x(i)), y = laneY(data.lane[i]) - 12;
    if (x < 0 || x > width) continue;
    const text = labels.join(" "), w = ctx.measureText(text).width + 8;
    ctx.fillStyle = c.bg; ctx.strokeStyle = n === serving ? c.brand : c.line;
    ctx.beginPath(); ctx.roundRect(x - w / 2, y - 8, w, 13, 4); ctx.fill(); ctx.stroke();
    ctx.fillStyle = c.text; ctx.fillText(text, x - w / 2 + 4, y - 1.5);
  }

  // the selected version
  const sel = state.selected === null ? undefined : data.at.get(state.selected);
  if (sel !== undefined) {
    ctx.strokeStyle = c.brand; ctx.lineWidth = 2.5;
    ctx.beginPath(); ctx.arc(px(view.x(sel)), laneY(data.lane[sel]), r + 4, 0, 2 * Math.PI); ctx.stroke();
  }

  // the metric strip: one line across the versions in view, its range on the left
  const top = TOP + lanesH + 8, bottom = top + STRIP_H - 16;
  const vals = [];
  for (let k = lo; k < hi; k++) { const i = view.order[k]; if (data.value[i] !== null) vals.push([px(view.x(i)), data.value[i], i]); }
  ctx.fillStyle = c.dim; ctx.font = `11px ${c.font}`; ctx.textAlign = "left";
  if (!vals.length) {
    ctx.fillText(data.metric ? `no version in view has ${data.metric}` : "no metric", PAD_L, (top + bottom) / 2);
  } else {
    let min = Infinity, max = -Infinity;
    for (const [, v] of vals) { if (v < min) min = v; if (v > max) max = v; }
    const span = max - min || Math.abs(max) || 1;
    const py = (v) => bottom - ((v - min) / span) * (bottom - top);
    ctx.strokeStyle = c.faint; ctx.beginPath(); ctx.moveTo(PAD_L, bottom + 0.5); ctx.lineTo(width - PAD_R, bottom + 0.5); ctx.stroke();
    ctx.strokeStyle = c.text; ctx.lineWidth = 1.25; ctx.beginPath();
    vals.forEach(([x, v], k) => (k ? ctx.lineTo(x, py(v)) : ctx.moveTo(x, py(v))));
    ctx.stroke();
    if (!dense) for (const [x, v, i] of vals) { ctx.fillStyle = colourOf(data.stage[i]); ctx.beginPath(); ctx.arc(x, py(v), 2.2, 0, 2 * Math.PI); ctx.fill(); }
    ctx.fillStyle = c.dim;
    ctx.fillText(`${data.metric} ${fmt(max)}`, PAD_L + 2, top - 1);
    ctx.fillText(fmt(min), PAD_L + 2, bottom + 8);
  }
  ui.root.dataset.drawn = String(shown);
}

function legend(ui) {
  const { data, state } = ui;
  const present = state.stages.filter((s) => data.stage.includes(s));
  for (const s of data.stage) if (!present.includes(s)) present.push(s);
  const box = h("div", { class: "mm-tl-legend", role: "list", "aria-label": "stages" });
  for (const s of present) {
    const k = Math.max(0, state.stages.indexOf(s));
    const swatch = h("canvas", { width: 14, height: 14, "aria-hidden": "true" });
    const ctx = swatch.getContext("2d");
    ctx.fillStyle = HUES[k % HUES.length]; shape(ctx, SHAPES[k % SHAPES.length], 7, 7, 4.5); ctx.fill();
    const count = data.stage.filter((x) => x === s).length;
    box.append(h("span", { role: "listitem" }, swatch, ` ${s} (${count.toLocaleString()})`));
  }
  return box;
}

// -- the details pane and the actions ---------------------------------------------------------------------------
function signed(d) { return d === null || d === undefined ? "" : `${d > 0 ? "+" : ""}${fmt(d)}`; }

// The engine's VersionDetails record (what the kernel and the REST API both send) as the pane reads it.
function flat(record) {
  const v = record.version;
  return {
    id: `${v.name}@v${v.number}`, number: v.number, created: v.created, actor: v.actor, message: v.message,
    estimator: v.estimator, parent: v.parent, rollback_of: v.rollback_of, stage: v.stage, aliases: v.aliases || [],
    sha256: (v.artifact || {}).sha256 || "", moves: record.moves || [], serving: record.serving,
    serving_status: record.serving_status, diff: record.diff,
  };
}

function detailsPane(ui, d) {
  const pane = h("div", { class: "mm-tl-details", "aria-live": "polite" });
  const aliases = d.aliases && d.aliases.length ? ` @${d.aliases.join(" @")}` : "";
  const serving = d.serving === d.id ? ` · ▶ serving (${d.serving_status})` : "";
  pane.append(h("div", { class: "mm-tl-title" }, `${d.id}${aliases} — ${d.stage}${serving}`));
  pane.append(h("div", { class: "mm-tl-dim" }, `${d.created.slice(0, 19).replace("T", " ")} by ${d.actor} · ${d.estimator || ""}` +
    ` · sha256 ${d.sha256.slice(0, 12)}${d.rollback_of ? ` · a rollback: a copy of ${d.parent} replacing ${d.rollback_of}` : ""}`));
  if (d.message) pane.append(h("div", {}, d.message));
  const diff = d.diff;
  if (!diff) {
    pane.append(h("div", { class: "mm-tl-dim" }, "no parent recorded (committed without --from): nothing to compare with"));
  } else {
    const rows = diff.metrics.map((m) => h("tr", {}, h("td", {}, m.name), h("td", { class: "num" }, fmt(m.a)),
      h("td", { class: "num" }, fmt(m.b)), h("td", { class: "num" }, signed(m.delta))));
    pane.append(h("div", { class: "mm-tl-sub" }, `against its parent ${diff.a}`));
    if (diff.estimator) pane.append(h("div", {}, `estimator ${diff.estimator[0]} → ${diff.estimator[1]}`));
    if (rows.length) {
      pane.append(h("table", { class: "mm-tl-table" }, h("thead", {}, h("tr", {}, h("th", {}, "metric"),
        h("th", {}, diff.a.split("@")[1]), h("th", {}, d.id.split("@")[1]), h("th", {}, "Δ"))), h("tbody", {}, ...rows)));
    }
    const params = Object.entries(diff.params);
    pane.append(h("div", {}, params.length ? `params: ${params.map(([k, [a, b]]) => `${k} ${a} → ${b}`).join(", ")}` : "params unchanged"));
    const agree = diff.agreement === null || diff.agreement === undefined ? (diff.agreement_note || "agreement not measured")
      : `predictions agree on ${(diff.agreement * 100).toFixed(1)} % of ${diff.agreement_rows} probe rows`;
    pane.append(h("div", {}, `${agree}${diff.data_changed ? " · training data changed" : ""}`));
  }
  pane.append(actions(ui, d));
  return pane;
}

function actions(ui, d) {
  const { data, state } = ui;
  const bar = h("div", { class: "mm-tl-actions", role: "group", "aria-label": `actions on ${d.id}` });
  const serving = state.serving.version;
  const next = Math.max(...data.number) + 1;
  const ask = (label, text, message) => () => confirmBox(ui, label, text, message);
  bar.append(h("button", { onclick: ask("Deploy", `Deploy ${d.id}: ${serving && serving !== d.id
    ? `the deployment switches from ${serving} to it without dropping a request` : serving === d.id
      ? "it already serves (nothing changes)" : "a local server starts on 127.0.0.1"}. It enters the deploy stage through its gates; a refused gate refuses the deploy.`,
  { action: "deploy", number: d.number }) }, "Deploy…"));
  bar.append(h("button", { onclick: ask("Roll back", `Roll back ${data.model} to ${d.id}: a new version ${data.model}@v${next} copies it` +
    `${serving ? ` and the deployment switches to the copy` : ""}. Nothing is deleted; the rollback is audited.`,
  { action: "rollback", number: d.number }) }, "Roll back to…"));
  for (const m of d.moves || []) {
    const why = m.allowed ? "its gates pass" : `refused now: ${m.refused.map((r) => `${r.gate} (${r.detail})`).join("; ") || m.reason}`;
    bar.append(h("button", { title: why, class: m.allowed ? "" : "refused",
      onclick: ask(`Move to ${m.to}`, `Move ${d.id} from ${d.stage} to ${m.to} (${why}).`, { action: "stage", number: d.number, stage: m.to }) },
    `${m.allowed ? "" : "✗ "}stage → ${m.to}…`));
  }
  const input = h("input", { type: "text", placeholder: "alias", size: 10, "aria-label": "alias name" });
  bar.append(input, h("button", { onclick: () => {
    const alias = input.value.trim();
    const now = data.aliases[alias];
    confirmBox(ui, "Set alias", `Point ${data.model}@${alias || "?"} at ${d.id}${now ? ` (it points at v${now} now)` : " (a new alias)"}.`,
      { action: "alias", number: d.number, alias });
  } }, "Set alias…"));
  return bar;
}

function confirmBox(ui, label, text, message) {
  const box = h("div", { class: "mm-tl-confirm", role: "alertdialog", "aria-label": label });
  const yes = h("button", { class: "primary", onclick: () => {
    box.replaceChildren(h("span", {}, `${label}: working…`));
    ui.send({ kind: "act", ...message, head: ui.data.head });
  } }, label);
  const no = h("button", { onclick: () => box.remove() }, "Cancel");
  box.append(h("div", {}, text), yes, no);
  ui.status.replaceChildren(box);
  yes.focus();
}

// -- the widget -------------------------------------------------------------------------------------------------
function render({ model, el: root }) {
  const started = performance.now();
  root.classList.add("mm-timeline");
  const ui = { root, model, state: { stages: model.get("stages") || [], serving: model.get("serving") || {}, selected: null } };
  ui.data = new Versions(model.get("payload") || {});
  ui.view = new View(ui.data, bestMode(ui.data, Math.max(320, root.clientWidth || 640)));
  let pending = 0;
  ui.send = (message) => { pending = performance.now(); model.send({ ...message, request: pending }); };

  const select = h("select", { "aria-label": "metric", onchange: (ev) => ui.send({ kind: "metric", name: ev.target.value }) });
  const axis = h("select", { "aria-label": "axis", onchange: (ev) => { ui.view = new View(ui.data, ev.target.value); redraw(); } },
    h("option", { value: "time" }, "by time"), h("option", { value: "number" }, "by version"));
  axis.value = ui.view.mode;
  const zoom = (f) => () => { ui.view.zoom(f); redraw(); };
  const title = h("span", { class: "mm-tl-title" });
  const head = h("div", { class: "mm-tl-head" }, title, select, axis,
    h("button", { onclick: zoom(0.5), "aria-label": "zoom in" }, "+"), h("button", { onclick: zoom(2), "aria-label": "zoom out" }, "−"),
    h("button", { onclick: () => { ui.view.refit(true); redraw(); } }, "fit"),
    h("span", { class: "mm-tl-dim" }, "drag to pan · Ctrl+wheel to zoom · ←/→ to step"));
  ui.canvas = h("canvas", { tabindex: 0, role: "img", class: "mm-tl-canvas" });
  ui.plot = h("div", { class: "mm-tl-plot" }, ui.canvas);
  ui.tip = h("div", { class: "mm-tl-tip", hidden: "" });
  ui.legend = h("div");
  ui.status = h("div", { class: "mm-tl-status" });
  ui.details = h("div");
  root.replaceChildren(head, ui.legend, ui.plot, ui.tip, ui.status, ui.details);

  function redraw() {
    const d = ui.data;
    title.textContent = `${d.model} — ${d.length.toLocaleString()} version${d.length === 1 ? "" : "s"}`;
    select.replaceChildren(...(d.metrics.length ? d.metrics : [""]).map((m) => {
      const o = h("option", { value: m }, m || "no metric"); if (m === d.metric) o.selected = true; return o;
    }));
    ui.legend.replaceChildren(legend(ui));
    ui.canvas.setAttribute("aria-label", `${d.model}: ${d.length} versions on a ${ui.view.mode === "time" ? "time" : "version"} axis` +
      (ui.state.selected !== null ? `; v${ui.state.selected} selected` : "; use the arrow keys to select a version"));
    drawCanvas(ui);
  }

  function pick(n) {
    if (n === undefined || n === null || !ui.data.at.has(n)) return;
    ui.state.selected = n;
    const i = ui.data.at.get(n), x = ui.view.x(i), [x0, x1] = ui.view.span;
    if (x < x0 || x > x1) ui.view.pan(x - (x0 + x1) / 2);
    ui.details.replaceChildren(h("div", { class: "mm-tl-dim" }, `loading ${ui.data.model}@v${n}…`));
    ui.send({ kind: "select", number: n });
    redraw();
  }

  function nearest(ev) {
    const rect = ui.canvas.getBoundingClientRect();
    const mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
    const [lo, hi] = ui.view.visible(0);
    let best, dist = 100;
    for (let k = lo; k < hi; k++) {
      const i = ui.view.order[k], dx = ui.px(ui.view.x(i)) - mx, dy = ui.laneY(ui.data.lane[i]) - my;
      const d2 = dx * dx + dy * dy;
      if (d2 < dist) { dist = d2; best = i; }
    }
    return best;
  }

  // pan by dragging, select by clicking, zoom with Ctrl+wheel (a plain wheel keeps scrolling the notebook)
  let drag = null;
  ui.canvas.addEventListener("pointerdown", (ev) => { drag = { x: ev.clientX, moved: false }; ui.canvas.setPointerCapture(ev.pointerId); });
  ui.canvas.addEventListener("pointermove", (ev) => {
    if (drag) {
      const dx = ev.clientX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (drag.moved) {
        const [x0, x1] = ui.view.span;
        ui.view.pan(-dx * (x1 - x0) / (ui.width - PAD_L - PAD_R)); drag.x = ev.clientX; redraw();
      }
      return;
    }
    const i = nearest(ev);
    if (i === undefined) { ui.tip.hidden = true; return; }
    const d = ui.data;
    ui.tip.textContent = `v${d.number[i]} · ${d.stage[i]} · ${d.metric || "metric"} ${fmt(d.value[i])} · ${new Date(d.created[i] * 1000).toLocaleString()}`;
    ui.tip.hidden = false;
  });
  ui.canvas.addEventListener("pointerleave", () => { ui.tip.hidden = true; });
  ui.canvas.addEventListener("pointerup", (ev) => {
    const moved = drag && drag.moved; drag = null;
    if (!moved) { const i = nearest(ev); if (i !== undefined) pick(ui.data.number[i]); }
  });
  ui.canvas.addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey && !ev.metaKey) return;
    ev.preventDefault();
    const rect = ui.canvas.getBoundingClientRect(), [x0, x1] = ui.view.span;
    const at = x0 + ((ev.clientX - rect.left - PAD_L) / (ui.width - PAD_L - PAD_R)) * (x1 - x0);
    ui.view.zoom(ev.deltaY > 0 ? 1.25 : 0.8, at); redraw();
  }, { passive: false });
  ui.canvas.addEventListener("keydown", (ev) => {
    const numbers = ui.data.number, cur = ui.state.selected;
    const k = cur === null ? -1 : ui.data.at.get(cur);
    const moves = {
      ArrowRight: () => pick(numbers[Math.min(numbers.length - 1, k + 1)]),
      ArrowLeft: () => pick(numbers[Math.max(0, k < 0 ? numbers.length - 1 : k - 1)]),
      Home: () => pick(numbers[0]), End: () => pick(numbers[numbers.length - 1]),
      "+": zoom(0.5), "=": zoom(0.5), "-": zoom(2), 0: () => { ui.view.refit(true); redraw(); },
    };
    if (moves[ev.key]) { ev.preventDefault(); moves[ev.key](); }
  });

  // answers from the kernel
  const onMessage = (msg) => {
    if (msg.kind === "same") return;
    if (msg.kind === "patch") {
      ui.data.meta(msg.payload);
      if (msg.payload.full) ui.data.reset(msg.payload); else ui.data.merge(msg.payload);
      ui.view.refit(false);
      ui.state.serving = model.get("serving") || {};
      redraw();
    } else if (msg.kind === "details") {
      const d = flat(msg.details);
      if (d.number === ui.state.selected) ui.details.replaceChildren(detailsPane(ui, d));
    } else if (msg.kind === "done") {
      ui.status.replaceChildren(h("div", { class: "mm-tl-ok", role: "status" }, `✓ ${msg.message}`));
    } else if (msg.kind === "error") {
      ui.status.replaceChildren(h("div", { class: "mm-tl-error", role: "alert" }, `✗ ${msg.message}`));
      if (ui.state.selected !== null && !ui.details.querySelector(".mm-tl-details")) ui.details.replaceChildren();
    }
  };
  model.on("msg:custom", onMessage);
  const onPayload = () => { ui.data.reset(model.get("payload")); ui.view.refit(false); redraw(); };
  model.on("change:payload", onPayload);
  const onServing = () => { ui.state.serving = model.get("serving") || {}; redraw(); };
  model.on("change:serving", onServing);

  // live while on screen: ask whether the registry moved; nothing runs while hidden or after the view is gone
  let onScreen = true;
  const seen = new IntersectionObserver((entries) => { onScreen = entries.some((e) => e.isIntersecting); });
  seen.observe(root);
  const poll = () => { if (root.isConnected && onScreen && !document.hidden) model.send({ kind: "poll", head: ui.data.head }); };
  const timer = setInterval(poll, Math.max(1, model.get("poll_s") || 3) * 1000);
  const resized = new ResizeObserver(() => drawCanvas(ui));
  resized.observe(ui.plot);

  redraw();
  poll(); // a view opened later (another tab, a reload) catches up with what happened since the payload was sent
  root.dataset.firstDrawMs = (performance.now() - started).toFixed(1);
  root.dataset.drawnAt = String(Date.now()); // epoch ms: a benchmark compares it with when the kernel sent the model
  return () => {
    clearInterval(timer); seen.disconnect(); resized.disconnect();
    model.off("msg:custom", onMessage); model.off("change:payload", onPayload); model.off("change:serving", onServing);
  };
}

export default { render };
