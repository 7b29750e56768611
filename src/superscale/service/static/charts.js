/* superscale workbench charts: plain SVG, written here (no library, works offline).
 *
 * Each function takes data and returns an element to append: stackedBar (a step
 * breakdown, memory against HBM), bars (clusters side by side), scatter (a Pareto front
 * with the top plans), lines (latency against rate, bandwidth against size), timeline
 * (rows per rank and stream from a Chrome trace) and placement (parallel groups on the
 * server / super-node / cluster hierarchy).
 */
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fde", "#e8833a", "#3aa676", "#c94f7c", "#8c6bd1", "#d4b13f",
    "#4bb3c7", "#a0522d", "#7f8c9a", "#5c9e31"];

  function el(name, attrs = {}, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(width, height, kind) {
    return el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-chart": kind });
  }

  function tip(node, text) {
    node.appendChild(el("title", {}, text));
    return node;
  }

  function fmt(v, digits = 3) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e15 || a < 1e-3)) return v.toExponential(2);
    if (a >= 1000) return Math.round(v).toLocaleString("en-US");
    return Number(v.toPrecision(digits)).toString();
  }

  function niceTicks(lo, hi, count = 5) {
    if (!(hi > lo)) { hi = lo + 1; }
    const step0 = (hi - lo) / count;
    const mag = 10 ** Math.floor(Math.log10(step0));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
    return ticks;
  }

  function scale(lo, hi, a, b, log) {
    if (log) {
      const l0 = Math.log(lo), l1 = Math.log(hi);
      return (v) => a + (Math.log(v) - l0) / ((l1 - l0) || 1) * (b - a);
    }
    return (v) => a + (v - lo) / ((hi - lo) || 1) * (b - a);
  }

  function legend(items) {
    const div = document.createElement("div");
    div.className = "legend";
    for (const [label, color] of items) {
      const span = document.createElement("span");
      const sw = document.createElement("i");
      sw.style.background = color;
      span.append(sw, label);
      div.appendChild(span);
    }
    return div;
  }

  function wrap(chart, items) {
    const div = document.createElement("div");
    div.appendChild(chart);
    if (items && items.length) div.appendChild(legend(items));
    return div;
  }

  /* One horizontal bar split into parts; `limit` draws a marker (e.g. HBM). */
  function stackedBar(parts, { unit = "", limit = null, limitLabel = "", width = 760 } = {}) {
    const shown = parts.filter((p) => p.value > 0);
    const total = shown.reduce((s, p) => s + p.value, 0);
    const max = Math.max(total, limit || 0) * 1.04 || 1;
    const h = 64, left = 26, right = width - 30;
    const x = scale(0, max, left, right);
    const root = svg(width, h, "stacked-bar");
    let at = 0;
    shown.forEach((p, i) => {
      const color = p.color || PALETTE[i % PALETTE.length];
      const rect = el("rect", { x: x(at), y: 8, width: Math.max(0.5, x(at + p.value) - x(at)),
        height: 26, fill: color, "data-part": p.key || p.label, "data-value": p.value });
      root.appendChild(tip(rect, `${p.label}: ${fmt(p.value)} ${unit} (${fmt(100 * p.value / total, 3)}%)`));
      if (x(at + p.value) - x(at) > 46) {
        root.appendChild(el("text", { x: x(at) + 4, y: 25, fill: "#fff", style: "fill:#fff" },
          `${fmt(100 * p.value / total, 2)}%`));
      }
      at += p.value;
    });
    for (const t of niceTicks(0, max, 6)) {
      root.appendChild(el("line", { x1: x(t), x2: x(t), y1: 36, y2: 40, stroke: "#9aa3b5" }));
      root.appendChild(el("text", { x: x(t), y: 53, "text-anchor": "middle", class: "muted" }, `${fmt(t)} ${unit}`));
    }
    if (limit) {
      root.appendChild(el("line", { x1: x(limit), x2: x(limit), y1: 2, y2: 40, stroke: "#c0392b", "stroke-width": 2, "stroke-dasharray": "4 2" }));
      root.appendChild(el("text", { x: Math.min(x(limit) + 4, right - 60), y: 63, style: "fill:#c0392b" }, limitLabel));
    }
    return wrap(root, shown.map((p, i) => [`${p.label} ${fmt(p.value)} ${unit}`, p.color || PALETTE[i % PALETTE.length]]));
  }

  /* Vertical bars, one per category (labels under them). */
  function bars(categories, values, { title = "", unit = "", width = 240, height = 190, color } = {}) {
    const root = svg(width, height, "bars");
    const top = 22, bottom = height - 44, left = 44, right = width - 8;
    const finite = values.map((v) => (Number.isFinite(v) ? v : 0));
    const max = Math.max(...finite, 0) * 1.1 || 1;
    const y = scale(0, max, bottom, top);
    root.appendChild(el("text", { x: left, y: 12, "font-weight": 600 }, title));
    for (const t of niceTicks(0, max, 4)) {
      root.appendChild(el("line", { x1: left, x2: right, y1: y(t), y2: y(t), stroke: "#eef0f4" }));
      root.appendChild(el("text", { x: left - 4, y: y(t) + 3, "text-anchor": "end", class: "muted" }, fmt(t)));
    }
    const band = (right - left) / Math.max(1, categories.length);
    categories.forEach((c, i) => {
      const v = values[i];
      const bx = left + i * band + band * 0.15, bw = band * 0.7;
      if (Number.isFinite(v)) {
        const rect = el("rect", { x: bx, y: y(v), width: bw, height: Math.max(0, bottom - y(v)),
          fill: color || PALETTE[i % PALETTE.length], "data-value": v, "data-category": c });
        root.appendChild(tip(rect, `${c}: ${fmt(v)} ${unit}`));
        root.appendChild(el("text", { x: bx + bw / 2, y: y(v) - 3, "text-anchor": "middle" }, fmt(v)));
      } else {
        root.appendChild(el("text", { x: bx + bw / 2, y: bottom - 3, "text-anchor": "middle", class: "muted" }, "n/a"));
      }
      const label = el("text", { x: bx + bw / 2, y: bottom + 12, "text-anchor": "middle", class: "muted" },
        c.length > 16 ? c.slice(0, 15) + "…" : c);
      root.appendChild(tip(label, c));
    });
    root.appendChild(el("line", { x1: left, x2: right, y1: bottom, y2: bottom, stroke: "#9aa3b5" }));
    if (unit) root.appendChild(el("text", { x: right, y: height - 6, "text-anchor": "end", class: "muted" }, unit));
    return root;
  }

  function axes(root, { xs, ys, x, y, box, xlabel, ylabel, logx, logy, xfmt = fmt }) {
    const g = el("g", { class: "axis" });
    const xt = logx ? logTicks(xs[0], xs[1]) : niceTicks(xs[0], xs[1], 6);
    const yt = logy ? logTicks(ys[0], ys[1]) : niceTicks(ys[0], ys[1], 5);
    for (const t of yt) {
      g.appendChild(el("line", { x1: box.left, x2: box.right, y1: y(t), y2: y(t), stroke: "#eef0f4" }));
      g.appendChild(el("text", { x: box.left - 5, y: y(t) + 3, "text-anchor": "end", class: "muted" }, fmt(t)));
    }
    for (const t of xt) {
      g.appendChild(el("line", { x1: x(t), x2: x(t), y1: box.bottom, y2: box.bottom + 4, stroke: "#9aa3b5" }));
      g.appendChild(el("text", { x: x(t), y: box.bottom + 16, "text-anchor": "middle", class: "muted" }, xfmt(t)));
    }
    g.appendChild(el("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, stroke: "#9aa3b5" }));
    g.appendChild(el("line", { x1: box.left, x2: box.left, y1: box.top, y2: box.bottom, stroke: "#9aa3b5" }));
    g.appendChild(el("text", { x: (box.left + box.right) / 2, y: box.bottom + 32, "text-anchor": "middle" }, xlabel));
    g.appendChild(el("text", { x: 12, y: (box.top + box.bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(box.top + box.bottom) / 2})` }, ylabel));
    root.appendChild(g);
  }

  function logTicks(lo, hi) {
    const out = [];
    const step = Math.max(1, Math.round(Math.log2(hi / lo) / 8));
    for (let e = Math.floor(Math.log2(lo)); e <= Math.ceil(Math.log2(hi)); e += step) {
      const v = 2 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
    return out.length ? out : [lo, hi];
  }

  function extent(values, log) {
    const v = values.filter((a) => Number.isFinite(a) && (!log || a > 0));
    if (!v.length) return [log ? 1 : 0, 1];
    let lo = Math.min(...v), hi = Math.max(...v);
    if (log) { if (lo === hi) { lo /= 2; hi *= 2; } return [lo / 1.15, hi * 1.15]; }
    if (lo === hi) { lo = lo * 0.9; hi = hi * 1.1 || 1; }
    const pad = (hi - lo) * 0.08;
    return [Math.max(0, lo - pad), hi + pad];
  }

  const bytesFmt = (v) => {
    const units = ["B", "K", "M", "G", "T"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${+v.toPrecision(3)}${units[i]}`;
  };

  /* Points (and a front drawn as a line); each point {x, y, label, group}. */
  function scatter(series, { xlabel, ylabel, logx = false, width = 760, height = 300, xfmt } = {}) {
    const root = svg(width, height, "scatter");
    const box = { left: 64, right: width - 16, top: 12, bottom: height - 44 };
    const all = series.flatMap((s) => s.points);
    const xs = extent(all.map((p) => p.x), logx), ys = extent(all.map((p) => p.y), false);
    ys[0] = Math.min(ys[0], 0);
    ys[1] *= 1.08;
    const x = scale(xs[0], xs[1], box.left, box.right, logx), y = scale(ys[0], ys[1], box.bottom, box.top);
    axes(root, { xs, ys, x, y, box, xlabel, ylabel, logx, xfmt });
    series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      if (s.line && s.points.length > 1) {
        const sorted = [...s.points].sort((a, b) => a.x - b.x);
        root.appendChild(el("polyline", { points: sorted.map((p) => `${x(p.x)},${y(p.y)}`).join(" "),
          fill: "none", stroke: color, "stroke-width": 2 }));
      }
      for (const p of s.points) {
        const dot = el("circle", { cx: x(p.x), cy: y(p.y), r: s.radius || 5, fill: color,
          "fill-opacity": s.line ? 1 : 0.75, stroke: "#fff", "data-series": s.name, "data-x": p.x, "data-y": p.y });
        root.appendChild(tip(dot, p.label || `${fmt(p.x)}, ${fmt(p.y)}`));
      }
    });
    return wrap(root, series.map((s, i) => [s.name, s.color || PALETTE[i % PALETTE.length]]));
  }

  /* Lines over a shared x; optional horizontal reference lines (SLOs). */
  function lines(series, { xlabel, ylabel, logx = false, logy = false, width = 760, height = 300, hlines = [], xfmt } = {}) {
    const root = svg(width, height, "lines");
    const box = { left: 64, right: width - 16, top: 12, bottom: height - 44 };
    const all = series.flatMap((s) => s.points);
    const xs = extent(all.map((p) => p.x), logx);
    const ys = extent([...all.map((p) => p.y), ...hlines.map((h) => h.y)], logy);
    if (!logy) { ys[0] = Math.min(ys[0], 0); ys[1] *= 1.08; }
    const x = scale(xs[0], xs[1], box.left, box.right, logx), y = scale(ys[0], ys[1], box.bottom, box.top, logy);
    axes(root, { xs, ys, x, y, box, xlabel, ylabel, logx, logy, xfmt });
    for (const h of hlines) {
      root.appendChild(el("line", { x1: box.left, x2: box.right, y1: y(h.y), y2: y(h.y), stroke: h.color || "#c0392b", "stroke-dasharray": "5 3" }));
      root.appendChild(el("text", { x: box.right - 4, y: y(h.y) - 4, "text-anchor": "end", style: `fill:${h.color || "#c0392b"}` }, h.label));
    }
    series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      const pts = s.points.filter((p) => Number.isFinite(p.y) && (!logy || p.y > 0));
      root.appendChild(el("polyline", { points: pts.map((p) => `${x(p.x)},${y(p.y)}`).join(" "),
        fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name }));
      for (const p of pts) {
        root.appendChild(tip(el("circle", { cx: x(p.x), cy: y(p.y), r: 3, fill: color }), `${s.name}: ${fmt(p.y)} at ${fmt(p.x)}`));
      }
    });
    return wrap(root, series.map((s, i) => [s.name, s.color || PALETTE[i % PALETTE.length]]));
  }

  /* A Chrome trace's complete events as rows, one per (process, thread). */
  /* `window` [start, end] in µs shows part of the step; `onZoom(range|null)` is called
   * after a drag across the chart (a range) or a double click (null: the whole step). */
  function timeline(trace, { width = 980, maxSlices = 20000, window = null, onZoom = null } = {}) {
    const events = trace.traceEvents || [];
    const names = new Map(), threads = new Map();
    for (const e of events) {
      if (e.ph !== "M") continue;
      if (e.name === "process_name") names.set(e.pid, e.args.name);
      if (e.name === "thread_name") threads.set(`${e.pid}/${e.tid}`, e.args.name);
    }
    const slices = events.filter((e) => e.ph === "X");
    const rows = [...new Set(slices.map((e) => `${e.pid}/${e.tid}`))].sort((a, b) => {
      const [pa, ta] = a.split("/").map(Number), [pb, tb] = b.split("/").map(Number);
      return pa - pb || ta - tb;
    });
    const rowH = 16, left = 190, top = 18, right = width - 10;
    const height = top + rows.length * rowH + 24;
    const root = svg(width, height, "timeline");
    const stepEnd = Math.max(...slices.map((e) => e.ts + e.dur), 1);
    const [start, end] = window || [0, stepEnd];
    const x = scale(start, end, left, right);
    const clip = el("clipPath", { id: "timeline-clip" });
    clip.appendChild(el("rect", { x: left, y: 0, width: right - left, height }));
    root.appendChild(clip);
    const colors = { F: "#2f6fde", B: "#e8833a", W: "#3aa676", step: "#8c6bd1" };
    rows.forEach((key, i) => {
      const [pid] = key.split("/").map(Number);
      const ry = top + i * rowH;
      if (i % 2 === 0) root.appendChild(el("rect", { x: 0, y: ry, width, height: rowH, fill: "#f7f8fb" }));
      root.appendChild(el("text", { x: 4, y: ry + 12 }, `${names.get(pid) || pid} · ${threads.get(key) || ""}`.slice(0, 32)));
    });
    const index = new Map(rows.map((k, i) => [k, i]));
    let drawn = 0;
    const lane = el("g", { "clip-path": "url(#timeline-clip)" });
    root.appendChild(lane);
    for (const e of slices) {
      if (drawn >= maxSlices) break;
      if (e.ts + e.dur < start || e.ts > end) continue;
      const i = index.get(`${e.pid}/${e.tid}`);
      const comm = !["F", "B", "W", "step"].includes(e.cat) || /comm|send|recv|reduce|gather|all/.test(e.name);
      const color = comm ? "#c94f7c" : colors[e.cat] || "#7f8c9a";
      const rect = el("rect", { x: x(e.ts), y: top + i * rowH + 2, width: Math.max(0.4, x(e.ts + e.dur) - x(e.ts)),
        height: rowH - 4, fill: color, "data-slice": e.name });
      lane.appendChild(tip(rect, `${e.name} (${e.cat}) mb ${e.args && e.args.micro_batch}: ${fmt(e.dur / 1e3)} ms at ${fmt(e.ts / 1e3)} ms`));
      drawn += 1;
    }
    if (onZoom) {
      const band = el("rect", { x: left, y: top, width: 0, height: rows.length * rowH, fill: "#2f6fde", "fill-opacity": 0.15 });
      root.appendChild(band);
      const at = (ev) => {
        const box = root.getBoundingClientRect();
        return Math.min(right, Math.max(left, (ev.clientX - box.left) * (width / box.width)));
      };
      let from = null;
      root.addEventListener("mousedown", (ev) => { from = at(ev); band.setAttribute("x", from); band.setAttribute("width", 0); });
      root.addEventListener("mousemove", (ev) => {
        if (from === null) return;
        const to = at(ev);
        band.setAttribute("x", Math.min(from, to)); band.setAttribute("width", Math.abs(to - from));
      });
      root.addEventListener("mouseup", (ev) => {
        if (from === null) return;
        const a = Math.min(from, at(ev)), b = Math.max(from, at(ev));
        from = null;
        const us = (px) => start + (px - left) / (right - left) * (end - start);
        if (b - a > 4) onZoom([us(a), us(b)]);
      });
      root.addEventListener("dblclick", () => onZoom(null));
      root.style.cursor = "crosshair";
    }
    for (const t of niceTicks(start / 1e3, end / 1e3, 8)) {
      const tx = x(t * 1e3);
      root.appendChild(el("line", { x1: tx, x2: tx, y1: top - 4, y2: height - 20, stroke: "#e3e6ee" }));
      root.appendChild(el("text", { x: tx, y: height - 8, "text-anchor": "middle", class: "muted" }, `${fmt(t)} ms`));
    }
    const note = drawn >= maxSlices ? [[`first ${drawn} slices drawn (zoom in, or download for all)`, "#fff"]] : [];
    if (onZoom) note.push(["drag across to zoom, double-click for the whole step", "#fff"]);
    return wrap(root, [["forward", colors.F], ["backward", colors.B], ["weight grad", colors.W],
      ["optimizer step", colors.step], ["communication", "#c94f7c"], ...note]);
  }

  /* The ranks of one group of each kind on the hierarchy: GPUs in scale-up domains in
   * systems; the first group of the chosen kind (rank 0's) is coloured. */
  function placement(hierarchy, groups, kinds, { width = 980 } = {}) {
    const perSystem = hierarchy.gpus_per_system, domain = hierarchy.domain_gpus;
    const shownSystems = Math.min(hierarchy.systems, 8);
    const cols = Math.min(perSystem, 16), cell = perSystem > 64 ? 9 : 14;
    const rowsPer = Math.ceil(perSystem / cols);
    const sysW = cols * (cell + 2) + 14, sysH = rowsPer * (cell + 2) + 30;
    const perLine = Math.max(1, Math.floor((width - 10) / (sysW + 10)));
    const lanes = Math.ceil(shownSystems / perLine);
    const height = lanes * (sysH + 12) + 24;
    const root = svg(width, height, "placement");
    const members = new Map();
    kinds.forEach((kind, k) => {
      const g = groups[kind];
      if (!g || g.size <= 1) return;
      for (let i = 0; i < g.size; i += 1) {
        const r = i * g.stride;
        if (!members.has(r)) members.set(r, []);
        members.get(r).push(k);
      }
    });
    for (let s = 0; s < shownSystems; s += 1) {
      const sx = 6 + (s % perLine) * (sysW + 10), sy = 6 + Math.floor(s / perLine) * (sysH + 12);
      root.appendChild(el("rect", { x: sx, y: sy, width: sysW, height: sysH, rx: 5, fill: "#f3f5f9", stroke: "#c7cedb" }));
      root.appendChild(el("text", { x: sx + 6, y: sy + 13, class: "muted" }, `${hierarchy.system_kind} ${s}`));
      for (let d = 0; d < perSystem / domain; d += 1) {
        const first = d * domain, r0 = Math.floor(first / cols), r1 = Math.floor((first + domain - 1) / cols);
        root.appendChild(el("rect", { x: sx + 4, y: sy + 18 + r0 * (cell + 2) - 2, width: sysW - 8,
          height: (r1 - r0 + 1) * (cell + 2) + 2, rx: 3, fill: "none", stroke: "#9aa9c4", "stroke-dasharray": "3 2" }));
      }
      for (let g = 0; g < perSystem; g += 1) {
        const rank = s * perSystem + g;
        const ks = members.get(rank) || [];
        const cx = sx + 7 + (g % cols) * (cell + 2), cy = sy + 18 + Math.floor(g / cols) * (cell + 2);
        const rect = el("rect", { x: cx, y: cy, width: cell, height: cell, rx: 2,
          fill: ks.length ? PALETTE[ks[0] % PALETTE.length] : "#dfe4ec", "data-rank": rank, "data-groups": ks.map((k) => kinds[k]).join(" ") });
        root.appendChild(tip(rect, `GPU ${rank}${ks.length ? ": rank 0's " + ks.map((k) => kinds[k]).join(", ") + " group" : ""}`));
        if (ks.length > 1) {
          root.appendChild(el("rect", { x: cx + cell / 2, y: cy, width: cell / 2, height: cell, fill: PALETTE[ks[1] % PALETTE.length] }));
        }
      }
    }
    const more = hierarchy.systems > shownSystems ? ` (first ${shownSystems} of ${hierarchy.systems} shown)` : "";
    root.appendChild(el("text", { x: 6, y: height - 6, class: "muted" },
      `${hierarchy.systems} × ${hierarchy.system} (${perSystem} GPUs, scale-up domains of ${domain} dashed) on ${hierarchy.network}, ${hierarchy.topology}${more}`));
    return wrap(root, kinds.filter((k) => groups[k] && groups[k].size > 1).map((k) => [
      `${k} ×${groups[k].size}: ${groups[k].where}`, PALETTE[kinds.indexOf(k) % PALETTE.length]]));
  }

  return { stackedBar, bars, scatter, lines, timeline, placement, fmt, bytesFmt, PALETTE };
})();
