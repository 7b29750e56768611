/* superscale workbench: the form, the calls to /api, and what each result draws.
 *
 * The page holds no model of its own: it builds a scenario (the same format as a YAML
 * scenario file), sends it to the API, and draws the JSON that comes back. The scenario
 * and the tab live in the URL's hash (#s=...), so a result can be shared as a link.
 */
"use strict";

const $ = (id) => document.getElementById(id);
const F = Charts.fmt;
const BREAKDOWN = [
  ["compute", "compute"], ["host", "waiting on the host"], ["tp_comm", "tensor-parallel comm"], ["cp_comm", "context-parallel comm"],
  ["ep_comm", "expert all-to-all"], ["pp_comm", "pipeline send/recv"], ["pp_bubble", "pipeline bubble"],
  ["dp_comm", "data-parallel comm"], ["other", "optimizer + other"],
];
const MEMORY = [["params_gib", "weights"], ["grads_gib", "gradients"], ["optimizer_gib", "optimizer states"],
  ["activations_gib", "activations"], ["workspace_gib", "workspace"]];
const GROUP_KINDS = ["tp", "cp", "ep", "dp", "edp", "pp"];
const CUSTOM = "__custom__";
// The built-in examples (examples/*.yaml) as form fields, so the page starts from them.
const PRESETS = {
  "llama3-70b-64xh100": { tab: "train", fields: { "model-source": "catalog", model: "llama3-70b",
    "cluster-source": "build", system: "dgx-h100", count: 8, network: "ib-ndr-400g", topology: "rail-optimized",
    "seq-len": 8192, "global-batch": 128, precision: "bf16", tp: 8, pp: 4, cp: 1, ep: 1, "micro-batch": 1,
    vstages: 1, schedule: "1f1b", zero: "1", recompute: "selective", sp: true } },
  "moe-metax-cube-128": { tab: "train", fields: { "model-source": "catalog", model: "qwen3-235b-a22b",
    "cluster-source": "build", system: "metax-cube-128", count: 1, network: "", "seq-len": 4096,
    "global-batch": 512, precision: "bf16", tp: 4, pp: 4, cp: 1, ep: 32, "micro-batch": 1, vstages: 1,
    schedule: "1f1b", zero: "1", recompute: "full", sp: true } },
  "intern-s1-pro-metax-1k": { tab: "train", fields: { "model-source": "catalog", model: "intern-s1-pro",
    "cluster-source": "catalog", cluster: "metax-cube-1k", "seq-len": 4096, "global-batch": 2048, precision: "bf16",
    tp: 4, pp: 8, cp: 1, ep: 128, "micro-batch": 1, vstages: 1, schedule: "1f1b", zero: "1", recompute: "selective", sp: true } },
  "llama3-70b-metax-1k-compare": { tab: "compare", fields: { "model-source": "catalog", model: "llama3-70b",
    "cluster-source": "catalog", cluster: "metax-cube-1k", "seq-len": 4096, "global-batch": 1024, precision: "bf16",
    tokens: 2e12, tp: 4, pp: 8, cp: 1, ep: 1, "micro-batch": 1, vstages: 1, schedule: "1f1b", zero: "1",
    recompute: "selective", sp: true, "compare-clusters": "metax-cube-1k,metax-c550-8x:128,metax-c500-1k,dgx-h100:128" } },
  "serve-llama2-70b-h200": { tab: "serve", fields: { "model-source": "catalog", model: "llama2-70b",
    "cluster-source": "build", system: "hgx-h200", count: 1, "s-precision": "fp8", "s-tp": 1, "s-pp": 1, "s-ep": 1,
    "s-adp": 1, "s-rate": 40, "s-requests": 2000, "s-prompt": 294, "s-output": 300, "s-ttft": 2, "s-tpot": 0.2 } },
};

const W = { catalog: {}, tab: "train", inlineModel: null, lastSimulate: null, lastSearch: null,
  lastServe: null, lastCompare: null, searchJob: null, trace: null };
window.workbench = W;

async function api(path, body, method) {
  const init = body === undefined ? { method: method || "GET" }
    : { method: method || "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    const err = new Error(data.error || `HTTP ${response.status}`);
    err.body = data;
    throw err;
  }
  return data;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.classList.add("hidden"); box.textContent = ""; return; }
  const b = err.body || {};
  let text = b.field ? `${b.field}: ${err.message}` : err.message;
  if (b.allowed && b.allowed.length && !/allowed|known/.test(err.message)) text += `\nallowed: ${b.allowed.join(", ")}`;
  box.textContent = text;
  box.classList.remove("hidden");
}

function status(text) { $("status").textContent = text || ""; }

function option(select, value, label) {
  const o = document.createElement("option");
  o.value = value; o.textContent = label || value;
  select.appendChild(o);
}

function num(id) { const v = $(id).value; return v === "" ? null : Number(v); }

/* --- the scenario the form describes ------------------------------------------------ */

function customSystem() {
  const chip = W.catalog.chips.find((c) => c.name === $("chip").value);
  const gpus = num("sys-gpus") || 8;
  return {
    name: `custom-${chip.name}-${gpus}`, display_name: `custom ${gpus}× ${chip.name}`,
    kind: gpus > 16 ? "super-node" : "server", chip: chip.name, gpus,
    scale_up: { link: $("scale-up-link").value, topology: "switch", gpus },
    nics: { link: $("network").value || "ib-ndr-400g", count: num("nic-count") || gpus },
    cooling: gpus > 16 ? "liquid" : "air", source: "built in the superscale workbench",
  };
}

function clusterValue() {
  if ($("cluster-source").value === "catalog") return $("cluster").value;
  const scaleOut = { topology: $("topology").value, oversubscription: num("oversub") || 1 };
  if ($("network").value) scaleOut.network = $("network").value;
  const system = $("system").value === CUSTOM ? customSystem() : $("system").value;
  return { system, count: num("count") || 1, scale_out: scaleOut };
}

function modelValue() {
  return $("model-source").value === "hf" && W.inlineModel ? W.inlineModel : $("model").value;
}

function parallelValue() {
  return { tp: num("tp"), pp: num("pp"), cp: num("cp"), ep: num("ep"), micro_batch: num("micro-batch"),
    virtual_stages: num("vstages"), schedule: $("schedule").value, zero: Number($("zero").value),
    recompute: $("recompute").value, sequence_parallel: $("sp").checked };
}

function trainingScenario() {
  const training = { seq_len: num("seq-len"), global_batch: num("global-batch"), precision: $("precision").value };
  if (num("tokens")) training.tokens = num("tokens");
  return { model: modelValue(), cluster: clusterValue(), training, parallel: parallelValue() };
}

function servingScenario(rate) {
  const slo = {};
  if (num("s-ttft")) slo.ttft_p99_s = num("s-ttft");
  if (num("s-tpot")) slo.tpot_p99_s = num("s-tpot");
  return {
    model: modelValue(), cluster: clusterValue(),
    serving: {
      precision: $("s-precision").value,
      plan: { tp: num("s-tp"), pp: num("s-pp"), ep: num("s-ep"), attention_dp: num("s-adp") },
      workload: { arrival: "poisson", rate_per_s: rate || num("s-rate"), requests: num("s-requests"),
        prompt_tokens: num("s-prompt"), output_tokens: num("s-output"), seed: 0 },
      slo,
    },
  };
}
W.scenario = trainingScenario;
W.servingScenario = servingScenario;

/* --- permalink: the form's fields in the URL hash ----------------------------------- */

const FIELDS = ["model-source", "model", "hf-name", "cluster-source", "cluster", "system", "chip", "sys-gpus",
  "scale-up-link", "nic-count", "count", "network", "topology", "oversub", "seq-len", "global-batch", "precision",
  "tokens", "tp", "pp", "cp", "ep", "micro-batch", "vstages", "schedule", "zero", "recompute", "sp", "engine",
  "trace", "search-gpus", "compare-clusters", "s-tp", "s-pp", "s-ep", "s-adp", "s-precision", "s-rate",
  "s-requests", "s-prompt", "s-output", "s-ttft", "s-tpot", "c-op", "c-min", "c-max", "v-inference"];

function formState() {
  const fields = {};
  for (const id of FIELDS) fields[id] = $(id).type === "checkbox" ? $(id).checked : $(id).value;
  return { tab: W.tab, fields, model: W.inlineModel };
}

function encode(obj) {
  const bytes = new TextEncoder().encode(JSON.stringify(obj));
  let bin = "";
  bytes.forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decode(text) {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
}

function applyState(state) {
  for (const [id, v] of Object.entries(state.fields || {})) {
    const node = $(id);
    if (!node) continue;
    if (node.type === "checkbox") node.checked = Boolean(v); else node.value = v;
  }
  W.inlineModel = state.model || null;
  $("model-note").textContent = W.inlineModel ? `inline model ${W.inlineModel.name}` : "";
  syncForm();
  setTab(state.tab || "train");
}

function permalink() {
  const url = `${location.origin}${location.pathname}#s=${encode(formState())}`;
  history.replaceState(null, "", url);
  return url;
}
W.permalink = permalink;

/* --- form behaviour ------------------------------------------------------------------ */

function syncForm() {
  const hf = $("model-source").value === "hf";
  document.querySelector(".src-catalog").classList.toggle("hidden", hf);
  document.querySelector(".src-hf").classList.toggle("hidden", !hf);
  const catalog = $("cluster-source").value === "catalog";
  document.querySelector(".cl-catalog").classList.toggle("hidden", !catalog);
  document.querySelector(".cl-build").classList.toggle("hidden", catalog);
  document.querySelector(".cl-custom").classList.toggle("hidden", $("system").value !== CUSTOM);
  describeCluster();
}

function describeCluster() {
  const note = $("cluster-note");
  if ($("cluster-source").value === "catalog") {
    const c = W.catalog.clusters.find((x) => x.name === $("cluster").value);
    note.textContent = c ? `${(c.system.gpus * c.count).toLocaleString()} GPUs: ${c.count} × ${c.system.name}` : "";
    return;
  }
  if ($("system").value === CUSTOM) {
    note.textContent = `${(num("sys-gpus") * num("count")).toLocaleString()} GPUs of ${$("chip").value}`;
    return;
  }
  const s = W.catalog.systems.find((x) => x.name === $("system").value);
  if (s) {
    note.textContent = `${(s.gpus * num("count")).toLocaleString()} GPUs: ${s.chip.name}, ${s.gpus} per ${s.kind}, ` +
      `scale-up ${s.scale_up.gpus} × ${s.scale_up.link.name}, ${s.nics.count} × ${s.nics.link.name}`;
  }
}

function setTab(tab) {
  W.tab = tab;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const t of ["train", "compare", "serve", "collective", "validate"]) {
    document.querySelector(`.tab-${t}`).classList.toggle("hidden", t !== tab);
    for (const node of document.querySelectorAll(`.only-${t}`)) node.classList.add("hidden");
  }
  for (const node of document.querySelectorAll(`.only-${tab}`)) node.classList.remove("hidden");
  showError(null);
}

async function busy(button, work) {
  button.disabled = true;
  showError(null);
  try {
    await work();
    permalink();
  } catch (err) {
    showError(err);
    status("");
  } finally {
    button.disabled = false;
  }
}

/* --- results ------------------------------------------------------------------------- */

function kpi(label, value, sub, key, raw, cls) {
  const div = document.createElement("div");
  div.className = `kpi ${cls || ""}`;
  div.innerHTML = `<div class="label"></div><div class="value"></div><div class="sub"></div>`;
  div.children[0].textContent = label;
  div.children[1].textContent = value;
  div.children[2].textContent = sub || "";
  if (key) { div.dataset.kpi = key; div.dataset.value = raw; }
  return div;
}

function show(id, node) {
  const box = $(id);
  box.replaceChildren(node);
  const card = box.closest(".card");
  if (card) card.classList.remove("hidden");
}

function table(headers, rows, { best = -1 } = {}) {
  const t = document.createElement("table");
  const head = t.createTHead().insertRow();
  for (const h of headers) { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); }
  const body = t.createTBody();
  rows.forEach((cells, i) => {
    const tr = body.insertRow();
    if (i === best) tr.className = "best";
    for (const c of cells) {
      const td = tr.insertCell();
      if (c instanceof Node) td.appendChild(c); else td.textContent = c;
    }
  });
  return t;
}

function money(v) {
  if (v === null || v === undefined) return "—";
  for (const [s, u] of [[1e9, "B"], [1e6, "M"], [1e3, "k"]]) if (Math.abs(v) >= s) return `$${(v / s).toFixed(1)}${u}`;
  return `$${v.toFixed(2)}`;
}

function renderSimulate(r) {
  W.lastSimulate = r;
  const m = r.memory;
  $("kpis").replaceChildren(
    kpi("step time", `${F(r.step_time_s, 4)} s`, `${r.engine} engine`, "step_time_s", r.step_time_s),
    kpi("tokens/s", F(r.tokens_per_s), `${F(r.tokens_per_s_per_gpu)} per GPU`, "tokens_per_s", r.tokens_per_s),
    kpi("MFU", `${(100 * r.mfu).toFixed(1)}%`, `HFU ${(100 * r.hfu).toFixed(1)}%`, "mfu", r.mfu),
    kpi("memory per GPU", `${F(m.peak_gib_per_gpu)} GiB`, r.fits ? `fits in ${F(m.hbm_gib)} GiB` : `over by ${F(m.over_by_gib)} GiB`,
      "peak_gib_per_gpu", m.peak_gib_per_gpu, r.fits ? "good" : "bad"),
    kpi("GPUs", r.gpus.toLocaleString(), `tp ${r.plan.tp} · pp ${r.plan.pp} · cp ${r.plan.cp} · dp ${r.plan.dp}`, "gpus", r.gpus),
  );
  show("chart-breakdown", Charts.stackedBar(BREAKDOWN.map(([k, label]) => ({ key: k, label, value: r.breakdown_s[k] })), { unit: "s" }));
  show("chart-memory", Charts.stackedBar(MEMORY.map(([k, label]) => ({ key: k, label, value: m[k] })),
    { unit: "GiB", limit: m.hbm_gib, limitLabel: `HBM ${F(m.hbm_gib)} GiB` }));
  // Expert groups mean nothing without experts (ep 1): draw the groups that carry traffic.
  const kinds = GROUP_KINDS.filter((k) => r.plan.ep > 1 || (k !== "ep" && k !== "edp"));
  show("chart-placement", Charts.placement(r.hierarchy, r.placement, kinds));
  if (r.trace) {
    W.trace = r.trace;
    const draw = (range) => show("chart-timeline", Charts.timeline(r.trace, { window: range, onZoom: draw }));
    draw(null);
  } else {
    $("card-timeline").classList.add("hidden");
  }
  const fac = r.facility, cost = r.cost, rel = r.reliability;
  if (fac) {
    show("facility", table(["", "value"], [
      ["power at the meter", `${F(fac.power.facility_kw)} kW (IT ${F(fac.power.it_kw)} kW, PUE ${F(fac.pue)})`],
      ["cabinets", `${fac.space.cabinets} (${fac.space.compute_cabinets} compute + ${fac.space.network_cabinets} network), ${F(fac.space.floor_m2)} m²`],
      ["energy", `${F(fac.energy.kwh_per_million_tokens)} kWh per million tokens`],
      ["interruptions", `${F(rel.interruptions_per_day)} per day`],
      ["capital", `${money(cost.capital_usd)}; ${money(cost.usd_per_million_tokens)} per million tokens`],
      ["to train", rel.wall_clock_days ? `${F(rel.wall_clock_days)} days, ${money(cost.run_usd)}` : "set tokens to train"],
    ]));
  }
  const list = $("warnings");
  list.replaceChildren(...(r.warnings || []).map((w) => { const li = document.createElement("li"); li.textContent = w; return li; }));
  status(`${r.scenario.model} on ${r.scenario.cluster} (${r.scenario.chip}, ${r.scenario.precision})`);
}

async function runSimulate() {
  const trace = $("trace").checked;
  const engine = trace ? "event" : $("engine").value;
  if (trace) $("engine").value = "event";
  status("simulating…");
  renderSimulate(await api("/api/simulate", { scenario: trainingScenario(), engine, trace }));
}

function planText(p, gpus) {
  const dp = gpus ? gpus / (p.tp * p.pp * p.cp) : "?";
  const v = p.virtual_stages > 1 ? `×${p.virtual_stages}` : "";
  return `tp${p.tp} pp${p.pp} cp${p.cp} ep${p.ep} dp${dp} mb${p.micro_batch} ${p.schedule}${v} zero${p.zero} ${p.recompute}${p.sequence_parallel ? " sp" : ""}`;
}

function usePlan(record) {
  const p = record.parallel;
  for (const [id, k] of [["tp", "tp"], ["pp", "pp"], ["cp", "cp"], ["ep", "ep"], ["micro-batch", "micro_batch"], ["vstages", "virtual_stages"]]) $(id).value = p[k];
  $("schedule").value = p.schedule; $("zero").value = String(p.zero); $("recompute").value = p.recompute;
  $("sp").checked = Boolean(p.sequence_parallel);
}

function renderSearch(job) {
  const r = job.result;
  W.lastSearch = r;
  const top = r.top || [];
  const best = top[0];
  const series = [{ name: `top ${top.length} plans (event engine)`, radius: 7, points: top.map((t, i) => ({
    x: t.gpus, y: (t.event.tokens_per_s || t.tokens_per_s) / t.gpus,
    label: `#${i + 1} ${planText(t.parallel, t.gpus)}: ${F(t.event.step_time_s || t.step_time_s)} s` })) }];
  if (r.pareto.length) {
    series.push({ name: "Pareto front (best per GPU count)", line: true, radius: 4, points: r.pareto.map((p) => ({
      x: p.gpus, y: p.tokens_per_s_per_gpu, label: `${p.gpus} GPUs: ${F(p.tokens_per_s)} tokens/s, ${planText(p.parallel, p.gpus)}` })) });
  }
  show("chart-pareto", Charts.scatter(series, { xlabel: "GPUs", ylabel: "tokens/s per GPU", logx: true, xfmt: (v) => v.toLocaleString() }));
  const rows = top.map((t, i) => {
    const b = document.createElement("button");
    b.textContent = "simulate";
    b.onclick = () => { usePlan(t); $("run-simulate").click(); };
    return [`${i + 1}`, t.cluster, t.gpus.toLocaleString(), planText(t.parallel, t.gpus), `${F(t.step_time_s, 4)} s`,
      t.event.step_time_s ? `${F(t.event.step_time_s, 4)} s` : (t.event.error || "—").slice(0, 40),
      F(t.event.tokens_per_s || t.tokens_per_s), `${(100 * (t.event.mfu || t.mfu)).toFixed(1)}%`, F(t.peak_gib_per_gpu), b];
  });
  const pruned = Object.values(r.pruned).reduce((a, b) => a + b, 0);
  const summary = document.createElement("p");
  summary.className = "note";
  summary.textContent = `${r.candidates.toLocaleString()} valid plans, ${r.evaluated_now.toLocaleString()} costed in ${F(r.sweep_s)} s ` +
    `(${F(r.plans_per_s)} plans/s); ${r.fits.toLocaleString()} fit; ${pruned.toLocaleString()} pruned.` + (best ? "" : " No plan fits.");
  const wrap = document.createElement("div");
  wrap.append(summary, table(["#", "cluster", "GPUs", "plan", "analytical", "event", "tokens/s", "MFU", "GiB/GPU", ""], rows, { best: 0 }));
  $("search-top").replaceChildren(wrap);
}

function renderProgress(job) {
  const p = job.progress;
  const share = p.total ? p.done / p.total : 0;
  const box = document.createElement("div");
  box.innerHTML = `<div class="progress"><div></div></div><p class="note"></p>`;
  box.querySelector(".progress > div").style.width = `${(100 * share).toFixed(1)}%`;
  box.querySelector("p").textContent = `${job.state}${job.message && job.state !== "done" ? ": " + job.message : ""} · ` +
    `${p.done.toLocaleString()} of ${p.total.toLocaleString()} plans · ${F(p.plans_per_s)} plans/s · ${F(job.elapsed_s)} s`;
  box.dataset.state = job.state;
  show("search-progress", box);
}

async function pollJob(job, onProgress) {
  let current = job;
  while (current.state === "queued" || current.state === "running") {
    onProgress(current);
    await new Promise((resolve) => { setTimeout(resolve, 250); });
    current = await api(`/api/jobs/${current.id}`);
  }
  onProgress(current);
  if (current.state === "failed") {
    const err = new Error(current.error ? current.error.error : current.message);
    err.body = current.error || {};
    throw err;
  }
  return current;
}

async function runSearch() {
  const body = { scenario: trainingScenario(), top: 5 };
  if ($("search-gpus").value.trim()) body.gpus = $("search-gpus").value.trim();
  status("searching…");
  $("search-top").replaceChildren();
  $("chart-pareto").replaceChildren();
  const job = await api("/api/search", body);
  W.searchJob = job.id;
  const done = await pollJob(job, renderProgress);
  W.searchJob = null;
  if (done.state === "done") { renderSearch(done); status("search done"); } else status(done.message);
}

/* --- compare, serve, collectives, validate ----------------------------------------- */

const COMPARE_ROWS = [
  ["step time (s)", (d) => d.step_time_s], ["tokens/s", (d) => d.tokens_per_s], ["MFU %", (d) => 100 * d.mfu],
  ["power at the meter (kW)", (d) => d.facility.power.facility_kw], ["cabinets", (d) => d.facility.space.cabinets],
  ["floor area (m²)", (d) => d.facility.space.floor_m2], ["capital ($)", (d) => d.cost.capital_usd],
  ["$ per million tokens", (d) => d.cost.usd_per_million_tokens],
];

async function runCompare() {
  status("comparing…");
  const clusters = $("compare-clusters").value.split(",").map((s) => s.trim()).filter(Boolean);
  const r = await api("/api/compare", { scenario: trainingScenario(), clusters });
  W.lastCompare = r;
  const names = r.clusters.map((c) => c.cluster);
  const charts = document.createElement("div");
  charts.style.display = "flex"; charts.style.flexWrap = "wrap"; charts.style.gap = ".5rem";
  for (const [label, get] of [COMPARE_ROWS[0], COMPARE_ROWS[3], COMPARE_ROWS[4], COMPARE_ROWS[5], COMPARE_ROWS[6]]) {
    charts.appendChild(Charts.bars(names, r.clusters.map((c) => (c.result ? get(c.result) : NaN)), { title: label }));
  }
  show("chart-compare", charts);
  const rows = COMPARE_ROWS.map(([label, get]) => [label, ...r.clusters.map((c) => {
    if (!c.result) return "—";
    const v = get(c.result);
    return label.startsWith("capital") ? money(v) : F(v, 4);
  })]);
  rows.push(["error", ...r.clusters.map((c) => (c.error || "").slice(0, 60))]);
  $("compare-table").replaceChildren(table(["", ...names], rows));
  status(`one workload on ${names.length} clusters`);
}

function renderServe(r) {
  W.lastServe = r;
  if (!r.fits) {
    $("serve-kpis").replaceChildren(kpi("fits", "no", (r.warnings || []).join("; "), "fits", 0, "bad"));
    return;
  }
  const t = r.throughput, l = r.latency_s;
  $("serve-kpis").replaceChildren(
    kpi("TTFT p99", `${F(1e3 * l.ttft.p99)} ms`, `p50 ${F(1e3 * l.ttft.p50)} ms`, "ttft_p99", l.ttft.p99),
    kpi("TPOT p99", `${F(1e3 * l.tpot.p99)} ms`, `p50 ${F(1e3 * l.tpot.p50)} ms`, "tpot_p99", l.tpot.p99),
    kpi("output tokens/s", F(t.output_tokens_per_s), `${F(t.output_tokens_per_s_per_gpu)} per GPU`, "output_tokens_per_s", t.output_tokens_per_s),
    kpi("goodput", `${(100 * r.goodput.attainment).toFixed(1)}%`, r.slo_met ? "SLOs met at p99" : "SLOs missed", "attainment", r.goodput.attainment, r.slo_met ? "good" : "bad"),
    kpi("GPUs", String(r.gpus), r.pools.map((p) => `${p.role} tp${p.plan.tp} dp${p.plan.dp}`).join(", "), "gpus", r.gpus),
  );
  const charts = document.createElement("div");
  charts.style.display = "flex"; charts.style.gap = ".5rem"; charts.style.flexWrap = "wrap";
  for (const [key, label] of [["ttft", "time to first token"], ["tpot", "time per output token"], ["e2e", "end-to-end"]]) {
    charts.appendChild(Charts.bars(["p50", "p90", "p99"], ["p50", "p90", "p99"].map((q) => 1e3 * l[key][q]),
      { title: label, unit: "ms", color: "#2f6fde" }));
  }
  show("chart-latency", charts);
  status(`${r.model} on ${r.cluster}: ${r.completed} requests in ${F(r.duration_s)} s`);
}

async function runServe() {
  status("simulating requests…");
  renderServe(await api("/api/serve", { scenario: servingScenario() }));
}

async function runCapacity() {
  const base = num("s-rate") || 1;
  const rates = [0.25, 0.5, 1, 1.5, 2, 3, 4].map((f) => +(f * base).toPrecision(3));
  status(`simulating ${rates.length} rates…`);
  const results = [];
  for (const rate of rates) {
    const r = await api("/api/serve", { scenario: servingScenario(rate) });
    if (r.fits) results.push({ rate, r });
    status(`simulated ${results.length} of ${rates.length} rates`);
  }
  const pick = (key) => results.map(({ rate, r }) => ({ x: rate, y: r.latency_s[key].p99 }));
  const hlines = [];
  if (num("s-ttft")) hlines.push({ y: num("s-ttft"), label: `TTFT SLO ${num("s-ttft")} s` });
  if (num("s-tpot")) hlines.push({ y: num("s-tpot"), label: `TPOT SLO ${num("s-tpot")} s`, color: "#b7791f" });
  show("chart-capacity", Charts.lines([
    { name: "TTFT p99 (s)", points: pick("ttft") }, { name: "TPOT p99 (s)", points: pick("tpot"), color: "#b7791f" },
  ], { xlabel: "requests per second", ylabel: "p99 latency (s)", logy: true, hlines }));
  W.capacity = results.map(({ rate, r }) => ({ rate, ttft_p99_s: r.latency_s.ttft.p99, tpot_p99_s: r.latency_s.tpot.p99 }));
  status("capacity curve done");
}

async function runServePlan() {
  const body = { scenario: servingScenario(), rate_per_s: num("s-rate"), requests: Math.max(100, Math.min(num("s-requests") || 500, 1500)) };
  if (num("s-ttft")) body.ttft_p99_s = num("s-ttft");
  if (num("s-tpot")) body.tpot_p99_s = num("s-tpot");
  status("planning…");
  const job = await pollJob(await api("/api/serve-plan", body), (j) => status(`serve-plan ${j.state} · ${F(j.elapsed_s)} s`));
  const r = job.result;
  const best = r.best;
  const head = document.createElement("p");
  head.textContent = best ? `${best.total_gpus} GPUs: ${best.units} × ${best.plan} (${F(best.rate_per_s)} req/s each)` : "no plan meets the SLOs";
  const rows = r.candidates.slice(0, 12).map((c) => [c.plan, c.total_gpus, F(c.rate_per_s), F(c.output_tokens_per_s_per_gpu), F(c.output_tokens_per_s_per_user)]);
  const box = document.createElement("div");
  box.append(head, table(["plan", "GPUs", "req/s per unit", "tok/s per GPU", "tok/s per user"], rows, { best: 0 }));
  show("serve-plan", box);
  $("chart-serve-pareto").replaceChildren(Charts.scatter([{ name: "Pareto front", line: true, points: r.pareto_front.map((p) => ({
    x: p.output_tokens_per_s_per_user, y: p.output_tokens_per_s_per_gpu, label: p.plan })) }],
  { xlabel: "output tokens/s per user", ylabel: "output tokens/s per GPU" }));
  status("serve-plan done");
}

async function runCollective() {
  const cluster = clusterValue();
  const body = { op: $("c-op").value, min_bytes: $("c-min").value, max_bytes: $("c-max").value };
  if (typeof cluster === "string") body.cluster = cluster;
  else if (typeof cluster.system === "string") { body.system = cluster.system; body.count = cluster.count; } else throw new Error("collectives need a catalog system or cluster");
  status("sweeping…");
  const r = await api("/api/collective", body);
  const series = r.algorithms.map((a) => ({ name: a, points: r.rows.map((row) => ({ x: row.size_bytes, y: row.algos[a].busbw_gb_per_s })) }));
  show("chart-collective", Charts.lines(series, { xlabel: "size (bytes)", ylabel: "bus bandwidth (GB/s)", logx: true, xfmt: Charts.bytesFmt }));
  status(`${r.op} on ${r.gpus} GPUs of ${r.cluster}`);
}

async function runValidate() {
  status("validating…");
  const inference = $("v-inference").checked;
  const path = `/api/validate${inference ? "?inference=true" : ""}`;
  let r = await api(path);
  if (r.state) {  // first time on this server: a job predicts every row, then it is kept
    await pollJob(r, (j) => status(`predicting every published row… ${F(j.elapsed_s)} s`));
    r = await api(path);
  }
  const rows = r.rows.filter((x) => x.error_pct !== null && x.error_pct !== undefined);
  const s = inference ? r.summary.throughput : r.summary.overall;
  $("validate-summary").textContent = `${s.rows} rows: mean |error| ${F(s.mean_abs_error_pct)}%, worst ${F(s.max_abs_error_pct)}%`;
  const width = Math.max(760, rows.length * 22 + 60);
  show("chart-validate", Charts.bars(rows.map((x) => `${x.row_id} ${x.model}`), rows.map((x) => Math.abs(x.error_pct)),
    { title: "|error| per row (%)", unit: "%", width, height: 240, color: "#8c6bd1" }));
  status(`${r.rows.length} published rows`);
}

/* --- start ----------------------------------------------------------------------------- */

async function loadHf() {
  let config;
  try { config = JSON.parse($("hf-config").value); } catch (err) { throw new Error(`config.json is not valid JSON: ${err.message}`); }
  const r = await api("/api/hf-config", { config, name: $("hf-name").value || "hf-model" });
  W.inlineModel = r.model;
  $("model-note").textContent = `inline model ${r.model.name}: ${F(r.derived.params_b)} B params (${F(r.derived.active_params_b)} B active)`;
}

async function start() {
  const [models, clusters, systems, chips, links] = await Promise.all(
    ["models", "clusters", "systems", "chips", "links"].map((k) => api(`/api/catalog/${k}`)));
  Object.assign(W.catalog, { models, clusters, systems, chips, links });
  for (const m of models) option($("model"), m.name);
  for (const c of clusters) option($("cluster"), c.name, `${c.name} (${(c.system.gpus * c.count).toLocaleString()} GPUs)`);
  for (const s of systems) option($("system"), s.name, `${s.name} (${s.gpus}× ${s.chip.name})`);
  option($("system"), CUSTOM, "custom: chip, GPUs per server…");
  for (const c of chips) option($("chip"), c.name);
  option($("network"), "", "the system's NICs");
  for (const l of links.filter((x) => x.kind === "scale-out")) option($("network"), l.name);
  for (const l of links.filter((x) => x.kind === "scale-up")) option($("scale-up-link"), l.name);
  $("model").value = "llama3-70b"; $("system").value = "dgx-h100"; $("network").value = "ib-ndr-400g";
  for (const name of Object.keys(PRESETS)) option($("preset"), name, `examples/${name}.yaml`);
  $("preset").onchange = () => {
    const preset = PRESETS[$("preset").value];
    if (preset) applyState({ tab: preset.tab, fields: preset.fields, model: null });
  };
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => setTab(b.dataset.tab);
  for (const id of ["model-source", "cluster-source", "system", "cluster", "count", "sys-gpus", "chip"]) $(id).addEventListener("change", syncForm);
  const actions = { "run-simulate": runSimulate, "run-search": runSearch, "run-compare": runCompare, "run-serve": runServe,
    "run-capacity": runCapacity, "run-serve-plan": runServePlan, "run-collective": runCollective, "run-validate": runValidate, "hf-load": loadHf };
  for (const [id, fn] of Object.entries(actions)) $(id).onclick = () => busy($(id), fn);
  $("cancel-search").onclick = () => { if (W.searchJob) api(`/api/jobs/${W.searchJob}`, undefined, "DELETE").catch(showError); };
  $("download-trace").onclick = () => {
    if (!W.trace) return;
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([JSON.stringify(W.trace)], { type: "application/json" }));
    a.download = "superscale-step.json";
    a.click();
  };
  $("permalink").onclick = async () => {
    const url = permalink();
    try { await navigator.clipboard.writeText(url); status("permalink copied"); } catch (err) { status(url); }
  };
  setTab("train");
  if (location.hash.startsWith("#s=")) {
    try { applyState(decode(location.hash.slice(3))); } catch (err) { showError(new Error("the permalink could not be read")); }
  }
  syncForm();
  document.body.dataset.ready = "true";
}

start().catch(showError);
