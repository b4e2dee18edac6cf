// The explanation chart: one row per feature, largest permutation importance first (at most MAX_ROWS, then
// "… N more"). Left panel: importance as a bar with a whisker for its spread (± one standard deviation over the
// repeats); right panel, when the version has them: mean |SHAP| bars on their own scale (another unit). Every value
// is also written as text, and every row has a tooltip with the full feature name and its numbers. Plain SVG drawn
// from the synced `chart`; colours are JupyterLab's theme variables (explanation.css), so light and dark both read.
const SVG = "http://www.w3.org/2000/svg";
const MAX_ROWS = 20, NAME_CHARS = 24;
const PAD = 8, NAME_W = 176, ROW_H = 22, BAR_H = 12, HEAD_H = 34;
const IMP_W = 230, IMP_LABEL = 104, GAP = 20, SHAP_W = 150, SHAP_LABEL = 60;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Three significant digits, as the text and HTML pictures write them (Python's .3g).
function fmt(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 1e-3)) return v.toExponential(2).replace("e+", "e");
  return String(Number(v.toPrecision(3)));
}

function short(name) {
  return name.length > NAME_CHARS ? name.slice(0, NAME_CHARS - 1) + "…" : name;
}

function panelHead(svg, x, title, unit) {
  svg.append(el("text", { x, y: PAD + 11, class: "mm-ex-panel" }, title));
  const sub = el("text", { x, y: PAD + 25, class: "mm-ex-unit" }, unit);
  svg.append(sub);
}

function drawRow(svg, c, i, at) {
  const y = PAD + HEAD_H + i * ROW_H;
  const mid = y + ROW_H / 2;
  const name = c.feature[i], imp = c.importance[i], std = c.std[i];
  const shap = at.shap ? c.shap[i] : null;
  const g = el("g", { class: "mm-ex-row", "data-feature": name });
  const tip = [`${name}`, `permutation importance ${fmt(imp)} ± ${fmt(std)}`];
  if (c.own && c.own_value[i] !== null && c.own_value[i] !== undefined) tip.push(`${c.own} ${fmt(c.own_value[i])}`);
  if (at.shap) tip.push(`mean |SHAP| ${fmt(shap)}`);
  g.append(el("title", {}, tip.join("\n")));
  g.append(el("rect", { x: 0, y, width: at.width, height: ROW_H, class: "mm-ex-band" }));
  g.append(el("text", { x: PAD + NAME_W - 8, y: mid + 4, "text-anchor": "end", class: "mm-ex-name" }, short(name)));

  const x0 = at.impX, scale = IMP_W / at.impMax;
  const w = Math.max(0, imp) * scale;
  g.append(el("rect", { x: x0, y: mid - BAR_H / 2, width: w, height: BAR_H, class: "mm-ex-bar" }));
  const lo = x0 + Math.max(0, imp - std) * scale, hi = x0 + Math.min(at.impMax, Math.max(0, imp + std)) * scale;
  if (std > 0 && hi > lo) {
    const whisker = `M${lo},${mid} H${hi} M${lo},${mid - 4} V${mid + 4} M${hi},${mid - 4} V${mid + 4}`;
    g.append(el("path", { d: whisker, class: "mm-ex-whisker" }));
  }
  g.append(el("text", { x: Math.max(x0 + w, hi) + 5, y: mid + 4, class: "mm-ex-value" },
    `${fmt(imp)} ± ${fmt(std)}`));

  if (at.shap) {
    const sw = shap === null ? 0 : Math.max(0, shap) * (SHAP_W / at.shapMax);
    g.append(el("rect", { x: at.shapX, y: mid - BAR_H / 2, width: sw, height: BAR_H, class: "mm-ex-shap" }));
    g.append(el("text", { x: at.shapX + sw + 5, y: mid + 4, class: "mm-ex-value" }, fmt(shap)));
  }
  svg.append(g);
}

function draw(model, root) {
  const c = model.get("chart") || {};
  const n = (c.feature || []).length;
  const shown = Math.min(n, MAX_ROWS);
  const shap = (c.shap || []).length === n && n > 0;
  const impX = PAD + NAME_W;
  const shapX = impX + IMP_W + IMP_LABEL + GAP;
  const width = (shap ? shapX + SHAP_W + SHAP_LABEL : impX + IMP_W + IMP_LABEL) + PAD;
  const height = PAD + HEAD_H + shown * ROW_H + PAD;
  const reach = [...Array(shown).keys()].map((i) => Math.max(0, c.importance[i] + Math.max(0, c.std[i])));
  const at = {
    width, impX, shapX, shap,
    impMax: Math.max(1e-12, ...reach),
    shapMax: shap ? Math.max(1e-12, ...c.shap.slice(0, shown).map((v) => v || 0)) : 1,
  };
  root.replaceChildren();

  const head = document.createElement("div");
  head.className = "mm-ex-head";
  head.append(Object.assign(document.createElement("b"), { textContent: c.version || "" }));
  head.append(` — what its predictions depend on (${c.rows} rows × ${c.repeats} repeats)`);
  root.append(head);

  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "mm-ex-chart",
    "aria-label": `${c.version}: ${shown} features by permutation importance${shap ? " and mean |SHAP|" : ""}` });
  panelHead(svg, impX, "permutation importance ± spread", `drop in ${c.scoring} when shuffled`);
  if (shap) panelHead(svg, shapX, "mean |SHAP|", c.shap_output || "");
  const top = PAD + HEAD_H - 2, bottom = PAD + HEAD_H + shown * ROW_H + 2;
  for (let i = 0; i < shown; i++) drawRow(svg, c, i, at);
  svg.append(el("path", { d: `M${impX},${top} V${bottom}`, class: "mm-ex-axis" }));
  if (shap) svg.append(el("path", { d: `M${shapX},${top} V${bottom}`, class: "mm-ex-axis" }));
  root.append(svg);

  const foot = document.createElement("div");
  foot.className = "mm-ex-foot";
  if (n > shown) {
    const more = document.createElement("div");
    more.className = "mm-ex-more";
    more.textContent = `… ${n - shown} more feature${n - shown === 1 ? "" : "s"}`;
    foot.append(more);
  }
  for (const line of [c.method, c.shap_note]) {
    if (!line) continue;
    const p = document.createElement("div");
    p.textContent = line;
    foot.append(p);
  }
  root.append(foot);
  root.dataset.drawn = String(shown);
}

export default {
  render({ model, el: root }) {
    root.classList.add("mm-explain");
    const redraw = () => draw(model, root);
    model.on("change:chart", redraw);
    redraw();
    return () => model.off("change:chart", redraw);
  },
};
