// The lifecycle graph widget: stage boxes in the engine's layers, edges with their gates, the selected version's
// stage and path, and each next move marked allowed or refused. Plain SVG drawn from the synced `picture`; colours
// are JupyterLab's theme variables, so it follows the light and dark themes. Every stage is a keyboard-focusable
// button: Enter or a click lists the versions in it; choosing one places it on the graph (one engine call, in Python).
const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 118, BOX_H = 44, GAP_X = 46, GAP_Y = 26, PAD = 16, ARC = 26, ARC_STEP = 14;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function positions(stages) {
  const rowsIn = {};
  for (const stage of stages) rowsIn[stage.layer] = (rowsIn[stage.layer] || 0) + 1;
  const tallest = Math.max(1, ...Object.values(rowsIn));
  const at = {};
  for (const stage of stages) {
    const offset = ((tallest - rowsIn[stage.layer]) * (BOX_H + GAP_Y)) / 2;
    at[stage.name] = [PAD + stage.layer * (BOX_W + GAP_X), PAD + offset + stage.row * (BOX_H + GAP_Y)];
  }
  return at;
}

// Next-layer edges run straight; an edge that skips layers (evaluate -> retire) arcs below the row, deeper the
// further it reaches, so it never runs through the boxes it skips.
function route(a0, b0, span) {
  if (span > 1) {
    const depth = ARC + ARC_STEP * (span - 2);
    const a = [a0[0] + BOX_W / 2 + 10, a0[1] + BOX_H], b = [b0[0] + BOX_W / 2 - 10, b0[1] + BOX_H];
    return {
      d: `M${a[0]},${a[1]} C${a[0]},${a[1] + depth} ${b[0]},${b[1] + depth} ${b[0]},${b[1] + 2}`,
      label: [(a[0] + b[0]) / 2, Math.max(a[1], b[1]) + depth * 0.75 + 4],
    };
  }
  const a = [a0[0] + BOX_W, a0[1] + BOX_H / 2], b = [b0[0], b0[1] + BOX_H / 2];
  const mx = (a[0] + b[0]) / 2;
  return { d: `M${a[0]},${a[1]} C${mx},${a[1]} ${mx},${b[1]} ${b[0]},${b[1]}`, label: [mx, (a[1] + b[1]) / 2 - 5] };
}

function drawEdges(svg, picture, at, moves) {
  const layerOf = Object.fromEntries((picture.stages || []).map((stage) => [stage.name, stage.layer]));
  // the chosen version's moves last, so they are drawn on top of the others
  const ordered = [...(picture.edges || [])].sort((p, q) => (p.from === picture.stage) - (q.from === picture.stage));
  for (const edge of ordered) {
    const { d, label } = route(at[edge.from], at[edge.to], layerOf[edge.to] - layerOf[edge.from]);
    const move = edge.from === picture.stage ? moves[edge.to] : undefined;
    const cls = move ? (move.allowed ? "mm-lc-edge allowed" : "mm-lc-edge refused") : "mm-lc-edge";
    svg.append(el("path", { d, class: cls, "marker-end": "url(#mm-lc-arrow)" }));
    if (edge.gates.length) {
      const text = el("text", { x: label[0], y: label[1], class: "mm-lc-gate", "text-anchor": "middle" },
        `${edge.gates.length} gate${edge.gates.length > 1 ? "s" : ""}`);
      text.append(el("title", {}, edge.gates.join("; ")));
      svg.append(text);
    }
  }
}

function drawStages(svg, model, picture, at, moves) {
  const walked = new Set(picture.path || []);
  for (const stage of picture.stages || []) {
    const [x, y] = at[stage.name];
    const move = moves[stage.name];
    const verdict = move ? (move.allowed ? ", next move allowed" : ", next move refused") : "";
    const g = el("g", { class: "mm-lc-stage", tabindex: 0, role: "button", "data-stage": stage.name,
      "aria-label": `${stage.name}: ${stage.count} versions${verdict}` });
    const cls = ["mm-lc-box"];
    if (walked.has(stage.name)) cls.push("walked");
    if (stage.name === picture.stage) cls.push("current");
    if (stage.name === model.get("focus")) cls.push("focus");
    g.append(el("rect", { x, y, width: BOX_W, height: BOX_H, rx: 8, class: cls.join(" ") }));
    const mark = move ? (move.allowed ? " ✓" : " ✗") : "";
    g.append(el("text", { x: x + BOX_W / 2, y: y + 18, "text-anchor": "middle", class: "mm-lc-name" },
      stage.name + mark));
    g.append(el("text", { x: x + BOX_W / 2, y: y + 34, "text-anchor": "middle", class: "mm-lc-count" },
      `${stage.count} version${stage.count === 1 ? "" : "s"}`));
    const pick = () => { model.set("focus", stage.name); model.save_changes(); };
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); }
    });
    svg.append(g);
  }
}

function drawLists(model, picture, root) {
  const moveList = document.createElement("ul");
  moveList.className = "mm-lc-moves";
  for (const m of picture.moves || []) {
    const li = document.createElement("li");
    li.className = m.allowed ? "allowed" : "refused";
    const why = m.allowed ? "allowed" : (m.refused.map((r) => `${r.gate} — ${r.detail}`).join("; ") || m.reason);
    li.textContent = `${m.allowed ? "✓" : "✗"} ${m.to}: ${why}`;
    moveList.append(li);
  }
  root.append(moveList);
  const focus = model.get("focus");
  const listed = (model.get("stage_versions") || {})[focus];
  if (focus && listed) {
    const box = document.createElement("div");
    box.className = "mm-lc-versions";
    box.append(`${listed.length ? "" : "no versions "}in ${focus}: `);
    for (const id of listed) {
      const b = document.createElement("button");
      b.textContent = id;
      b.className = id === picture.version ? "chosen" : "";
      b.addEventListener("click", () => { model.set("version", id); model.save_changes(); });
      box.append(b);
    }
    root.append(box);
  }
  const error = model.get("error");
  if (error) {
    const p = document.createElement("div");
    p.className = "mm-lc-error";
    p.textContent = `✗ ${error}`;
    root.append(p);
  }
}

function draw(model, root) {
  const picture = model.get("picture") || {};
  const stages = picture.stages || [];
  const moves = Object.fromEntries((picture.moves || []).map((m) => [m.to, m]));
  const at = positions(stages);
  const layerOf = Object.fromEntries(stages.map((stage) => [stage.name, stage.layer]));
  const spans = (picture.edges || []).map((e) => layerOf[e.to] - layerOf[e.from]).filter((n) => n > 1);
  const deepest = Math.max(0, ...spans.map((n) => ARC + ARC_STEP * (n - 2)));
  const width = Math.max(0, ...Object.values(at).map(([x]) => x)) + BOX_W + PAD;
  const height = Math.max(0, ...Object.values(at).map(([, y]) => y)) + BOX_H + PAD + deepest;
  root.replaceChildren();

  const head = document.createElement("div");
  head.className = "mm-lc-head";
  head.textContent = picture.version
    ? `${picture.model}: ${picture.version} is in ${picture.stage}`
    : `${picture.model}: lifecycle`;
  root.append(head);

  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "group",
    "aria-label": `${picture.model} lifecycle graph` });
  const defs = el("defs");
  const marker = el("marker", { id: "mm-lc-arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7,
    markerHeight: 7, orient: "auto" });
  marker.append(el("path", { d: "M0,0 L8,4 L0,8 z", class: "mm-lc-arrowhead" }));
  defs.append(marker);
  svg.append(defs);
  drawEdges(svg, picture, at, moves);
  drawStages(svg, model, picture, at, moves);
  root.append(svg);
  drawLists(model, picture, root);
}

export default {
  render({ model, el: root }) {
    root.classList.add("mm-lifecycle");
    const redraw = () => draw(model, root);
    for (const name of ["picture", "stage_versions", "focus", "error"]) model.on(`change:${name}`, redraw);
    redraw();
    // live while on screen: ask whether the registry moved; nothing runs while hidden or after the view is gone
    let onScreen = true;
    const seen = new IntersectionObserver((entries) => { onScreen = entries.some((e) => e.isIntersecting); });
    seen.observe(root);
    const timer = setInterval(() => {
      if (root.isConnected && onScreen && !document.hidden) model.send({ kind: "poll" });
    }, Math.max(1, model.get("poll_s") || 3) * 1000);
    return () => {
      clearInterval(timer);
      seen.disconnect();
      for (const name of ["picture", "stage_versions", "focus", "error"]) model.off(`change:${name}`, redraw);
    };
  },
};
