// tokenlake explorer. Every piece of lake data reaches the page as text (textContent, never
// markup): documents contain HTML and scripts, and the Content-Security-Policy forbids inline
// script besides.
"use strict";

const main = document.getElementById("main");
const state = { lake: null, version: "", me: null, lakes: [] };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (k === "text") e.textContent = String(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(...nodes) { main.replaceChildren(...nodes.filter(n => n !== null && n !== undefined && n !== false)); }
// The page being rendered: a render that finishes after the user has moved on (its fetch was
// slower than the next page's) must not replace the newer page.
let currentRender = null;
function error(message) { return el("p", { class: "error", id: "error" }, message); }

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) { state.me = null; renderLogin(body && body.error); throw new Error("signed out"); }
  if (!response.ok) throw new Error((body && body.error) || response.statusText);
  return body;
}
function post(path, body) {
  return api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}
function lakePath(rest) { return `/api/lakes/${encodeURIComponent(state.lake)}/${rest}`; }
function withVersion(params) {
  const p = new URLSearchParams(params || {});
  if (state.version) p.set("version", state.version);
  return p.toString();
}

function table(columns, rows, cell) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map(c => el("th", {}, c)))),
    el("tbody", {}, rows.map(r => el("tr", {}, columns.map(c => {
      const v = cell ? cell(r, c) : r[c];
      const cls = `col-${String(c).replace(/[^a-z0-9_]/gi, "")}${typeof v === "number" ? " num" : ""}`;
      return el("td", { class: cls }, v instanceof Node ? v : (v === null || v === undefined ? "" : String(v)));
    })))));
}

// -- sign-in and navigation ---------------------------------------------------------------------

function renderLogin(message) {
  document.getElementById("nav").replaceChildren();
  document.getElementById("who").textContent = "";
  const input = el("input", { type: "password", id: "token", autocomplete: "off", placeholder: "token" });
  const form = el("form", { id: "login", on: { submit: async e => {
    e.preventDefault();
    try { await post("/api/login", { token: input.value }); input.value = ""; await start(); }
    catch (err) { if (err.message !== "signed out") form.append(error(err.message)); }
  } } }, el("h2", {}, "Sign in"), el("p", {}, "Use a token of this server (a reader's or an admin's)."),
    input, " ", el("button", { type: "submit", id: "signin" }, "Sign in"));
  show(form, message ? el("p", { class: "muted", id: "refused" }, message) : null);
}

const PAGES = [["versions", "Versions"], ["describe", "Describe"], ["documents", "Documents"], ["sql", "SQL"], ["recipe", "Recipe"], ["eval", "Evaluation"]];

function renderNav() {
  const page = location.hash.replace(/^#\/?/, "").split(/[/?]/)[0] || "versions";
  const lakeSelect = el("select", { id: "lake", on: { change: e => { state.lake = e.target.value; route(); } } },
    state.lakes.map(l => el("option", { value: l, selected: l === state.lake }, l)));
  const version = el("input", { id: "version", placeholder: "version or tag (latest)", value: state.version,
    on: { change: e => { state.version = e.target.value.trim(); route(); } } });
  document.getElementById("nav").replaceChildren(lakeSelect, version,
    ...PAGES.map(([id, name]) => el("a", { href: `#/${id}`, id: `nav-${id}`, class: id === page ? "active" : null }, name)));
  const who = document.getElementById("who");
  who.replaceChildren(`${state.me.name} (${state.me.role})`);
  if (!state.me.open) who.append(" ", el("button", { id: "signout", on: { click: async () => { await post("/api/logout", {}); renderLogin(); } } }, "Sign out"));
}

async function start() {
  state.me = await api("/api/me");
  state.lakes = await api("/api/lakes");
  state.lake = state.lake || state.lakes[0] || null;
  route();
}

function route() {
  if (!state.me) return;
  renderNav();
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(query || "");
  const [page, arg] = path.split("/");
  const pages = { versions: renderVersions, describe: renderDescribe, documents: renderDocuments, doc: renderDocument,
    cluster: renderCluster, sql: renderSql, recipe: renderRecipe, eval: renderEval };
  const render = pages[page || "versions"];
  if (!render) return show(error(`no page ${page}`));
  const token = {};
  currentRender = token;
  const guarded = (...nodes) => { if (currentRender === token) show(...nodes); };
  guarded(el("p", { class: "muted" }, "Loading…"));
  render(arg && decodeURIComponent(arg), params, guarded).catch(err => { if (err.message !== "signed out") guarded(error(err.message)); });
}
window.addEventListener("hashchange", route);

// -- pages --------------------------------------------------------------------------------------

function madeBy(v) {
  const p = v.properties || {};
  const op = p["tokenlake.operation"];
  if (op === "ingest") return `ingest ${p["tokenlake.ingest_id"] || "?"} (source ${p["tokenlake.source"] || "?"})`;
  return op || "";
}

async function renderVersions(_0, _1, show) {
  const data = await api(lakePath("versions"));
  const rows = data.versions.slice().reverse();
  const diffOut = el("div", { id: "diff" });
  const from = el("input", { id: "diff-from", placeholder: "from (version or tag)" });
  const to = el("input", { id: "diff-to", placeholder: "to (latest)" });
  const diffForm = el("form", { on: { submit: async e => {
    e.preventDefault();
    try {
      const d = await api(lakePath(`diff?${new URLSearchParams({ from: from.value, to: to.value })}`));
      diffOut.replaceChildren(
        el("p", { id: "diff-summary" }, `version ${d.from_version} → ${d.to_version}: ${d.rows_added} documents (${d.tokens_added} tokens) added, ` +
          `${d.rows_removed} (${d.tokens_removed} tokens) removed`),
        table(["source", "rows_added", "tokens_added", "rows_removed", "tokens_removed"], d.by_source));
    } catch (err) { diffOut.replaceChildren(error(err.message)); }
  } } }, from, " ", to, " ", el("button", { type: "submit" }, "Diff"));
  const nodes = [el("h2", {}, `Versions of ${state.lake}`),
    table(["version", "committed (UTC)", "rows", "tags", "made by"], rows, (v, c) => ({
      "version": v.version, "committed (UTC)": v.committed_at, "rows": v.rows, "tags": (v.tags || []).join(", "), "made by": madeBy(v) }[c])),
    el("h3", {}, "Diff two versions"), diffForm, diffOut];
  if (data.can_tag) {
    const name = el("input", { id: "tag-name", placeholder: "tag name" });
    const version = el("input", { id: "tag-version", placeholder: "version (latest)" });
    const out = el("span");
    nodes.push(el("h3", {}, "Tag a version (admin)"), el("form", { id: "tag-form", on: { submit: async e => {
      e.preventDefault();
      try { const t = await post(lakePath("tags"), { name: name.value, version: version.value || null }); out.textContent = ` tagged version ${t.version} ${t.tag}`; }
      catch (err) { out.replaceChildren(error(err.message)); }
    } } }, name, " ", version, " ", el("button", { type: "submit" }, "Create tag"), out));
  }
  show(...nodes);
}

function bars(rows, key) {
  const max = Math.max(1, ...rows.map(r => r[key] || 0));
  return rows.map(r => {
    const bar = el("span", { class: "bar" });
    bar.style.width = `${Math.round(200 * (r[key] || 0) / max)}px`;
    return Object.assign({}, r, { chart: bar });
  });
}

async function renderDescribe(_0, _1, show) {
  const d = await api(lakePath(`describe?${withVersion()}`));
  const groups = [];
  for (const [key, title] of [["by_source", "By source"], ["by_lang", "By language"], ["by_tier", "By quality tier"], ["by_quality_tier", "By quality tier"]]) {
    if (!d[key]) continue;
    groups.push(el("h3", {}, title), table(["key", "rows", "tokens", "chars", "chart"], bars(d[key], "tokens"), (r, c) => c === "key" ? (r.key === null ? "(none)" : r.key) : r[c]));
  }
  show(el("h2", {}, `${d.lake}, version ${d.version}`),
    el("p", { id: "totals" }, `${d.rows} documents, ${d.tokens} tokens, ${d.chars} characters; tags: ${(d.tags || []).join(", ") || "none"}`),
    ...groups,
    el("h3", {}, "Columns"), table(["name", "data_type", "nullable"], d.columns || []));
}

async function renderDocuments(_, params, show) {
  const filter = el("input", { type: "text", id: "filter", placeholder: "SQL WHERE over the columns, e.g. quality_tier = 0 AND NOT is_dup", value: params.get("filter") || "" });
  const columns = el("input", { type: "text", id: "columns", placeholder: "columns (comma-separated; default: the labels)", value: params.get("columns") || "" });
  const seed = el("input", { id: "seed", placeholder: "seed (random order)", value: params.get("seed") || "" });
  const page = Number(params.get("page") || 0);
  const go = p => {
    const q = new URLSearchParams();
    if (filter.value.trim()) q.set("filter", filter.value.trim());
    if (columns.value.trim()) q.set("columns", columns.value.trim());
    if (seed.value.trim()) q.set("seed", seed.value.trim());
    if (p) q.set("page", p);
    location.hash = `#/documents?${q}`;
  };
  const form = el("form", { id: "documents-form", on: { submit: e => { e.preventDefault(); go(0); } } },
    filter, " ", columns, " ", seed, " ", el("button", { type: "submit", id: "apply" }, "Apply"));
  const q = { page, size: 20 };
  for (const k of ["filter", "columns", "seed"]) if (params.get(k)) q[k] = params.get(k);
  show(el("h2", {}, "Documents"), form, el("p", { class: "muted" }, "Loading…"));
  let data;
  try { data = await api(lakePath(`documents?${withVersion(q)}`)); }
  catch (err) { if (err.message !== "signed out") show(el("h2", {}, "Documents"), form, error(err.message)); return; }
  const rows = table(data.columns, data.rows, (r, c) => {
    if (c === "doc_id") return el("a", { href: `#/doc/${r.doc_id}`, class: "doc-link" }, r.doc_id);
    if (c === "dup_cluster" && r.dup_cluster) return el("a", { href: `#/cluster/${r.dup_cluster}` }, r.dup_cluster);
    const v = r[c];
    return v !== null && typeof v === "object" ? JSON.stringify(v) : v;
  });
  const pages = Math.ceil(data.matched / data.size);
  show(el("h2", {}, "Documents"), form,
    el("p", {}, el("span", { id: "matched" }, String(data.matched)), ` documents match; page ${page + 1} of ${Math.max(pages, 1)} (${data.elapsed_ms} ms)`),
    rows,
    el("p", {}, page > 0 ? el("button", { id: "prev", on: { click: () => go(page - 1) } }, "Previous") : null, " ",
      page + 1 < pages ? el("button", { id: "next", on: { click: () => go(page + 1) } }, "Next") : null));
}

async function renderDocument(id, _1, show) {
  const data = await api(lakePath(`documents/${encodeURIComponent(id)}?${withVersion()}`));
  const d = data.document;
  const labels = Object.keys(d).filter(k => k !== "text");
  const checks = data.failed_checks.length
    ? el("ul", { id: "checks" }, data.failed_checks.map(c => el("li", { class: "check" },
        `${c.check} (${c.rule_set}, bit ${c.bit})`,
        c.rule ? el("span", { class: "rule" }, `: ${c.rule.signal} = ${c.rule.value} is ${c.rule.fails} the threshold ${c.rule.threshold}`) : null,
        Object.keys(c.signals).length && !c.rule ? el("span", { class: "muted" }, ` — ${Object.entries(c.signals).map(([k, v]) => `${k} = ${v}`).join(", ")}`) : null)))
    : el("p", { id: "checks" }, d.rule_flags === undefined ? "This version has no rule labels." : "Passes every check.");
  const cluster = d.dup_cluster ? el("p", {}, d.is_dup ? `A copy (${d.dup_kind || "?"}) of ` : "Keeper of its duplicate cluster ",
    el("a", { href: `#/cluster/${d.dup_cluster}`, id: "cluster-link" }, `cluster ${d.dup_cluster}`)) : null;
  show(el("h2", {}, `Document ${d.doc_id}`),
    el("p", {}, `source ${d.source}, language ${d.lang || "?"}${d.lang_score !== undefined && d.lang_score !== null ? ` (${Number(d.lang_score).toFixed(2)})` : ""}` +
      `${d.ppl !== undefined && d.ppl !== null ? `, perplexity ${Number(d.ppl).toFixed(1)}` : ""}${d.quality_tier !== undefined && d.quality_tier !== null ? `, tier ${d.quality_tier}` : ""}`),
    cluster,
    el("h3", {}, "Failed checks"), el("p", { class: "muted", id: "thresholds-from" }, `Thresholds of ${data.thresholds_from}.`), checks,
    el("h3", {}, "Text"), el("pre", { id: "doc-text" }, d.text === null ? "(no text kept)" : d.text),
    el("h3", {}, "Labels"), table(["column", "value"], labels.map(k => ({ column: k, value: d[k] }))));
}

// Words of `a` that are not in a longest common subsequence with `b`, for highlighting.
function changedWords(a, b) {
  const x = a.split(/(\s+)/), y = b.split(/(\s+)/);
  const n = Math.min(x.length, 1500), m = Math.min(y.length, 1500);
  const dp = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n) {
    if (j < m && x[i] === y[j]) { out.push(x[i]); i++; j++; }
    else if (j < m && dp[i][j + 1] > dp[i + 1][j]) j++;
    else { out.push(/^\s+$/.test(x[i]) ? x[i] : el("mark", {}, x[i])); i++; }
  }
  if (x.length > n) out.push(x.slice(n).join(""));
  return out;
}

async function renderCluster(keeper, _1, show) {
  const data = await api(lakePath(`clusters/${encodeURIComponent(keeper)}?${withVersion()}`));
  const keep = data.members.find(m => m.doc_id === data.keeper) || data.members[0];
  const others = data.members.filter(m => m !== keep);
  const card = (m, against) => el("div", { class: "member" },
    el("p", {}, el("a", { href: `#/doc/${m.doc_id}` }, m.doc_id), " ",
      m === keep ? el("strong", { class: "keeper" }, "keeper") : el("span", { class: "edge-kind" }, `joined by ${m.dup_kind || "?"}`),
      m.url ? el("span", { class: "muted" }, ` ${m.url}`) : null),
    el("pre", {}, against ? changedWords(m.text || "", against.text || "") : (m.text || "")));
  show(el("h2", {}, `Duplicate cluster ${data.keeper}`),
    el("p", { id: "cluster-size" }, `${data.members.length}${data.truncated ? "+" : ""} documents; highlighted: words not in the keeper`),
    ...others.map(m => el("div", { class: "side" }, card(keep), card(m, keep))),
    others.length ? null : card(keep));
}

async function renderSql(_0, _1, show) {
  const sql = el("textarea", { id: "sql" }, "SELECT source, count(*) AS docs, sum(n_tokens) AS tokens FROM documents GROUP BY source ORDER BY tokens DESC");
  const status = el("p", { id: "sql-status", class: "muted" });
  const out = el("div", { id: "sql-result" });
  const links = el("p", {});
  const run = async () => {
    out.replaceChildren(el("p", { class: "muted" }, "Running…"));
    try {
      const r = await post(lakePath("sql"), { sql: sql.value, version: state.version || null });
      status.textContent = `${r.row_count} rows in ${r.elapsed_ms} ms${r.truncated ? " (cut at the server's row limit)" : ""}`;
      out.replaceChildren(table(r.columns.map(c => c.name), r.rows, (row, c) => { const v = row[c]; return v !== null && typeof v === "object" ? JSON.stringify(v) : v; }));
      const q = withVersion({ sql: sql.value });
      links.replaceChildren(el("a", { href: lakePath(`sql.csv?${q}`), id: "csv-link", download: "query.csv" }, "Download CSV"), " ",
        el("a", { href: lakePath(`sql.parquet?${q}`), id: "parquet-link", download: "query.parquet" }, "Download Parquet"));
    } catch (err) { if (err.message !== "signed out") out.replaceChildren(error(err.message)); }
  };
  show(el("h2", {}, "SQL (read-only; the table is documents)"), sql, el("p", {}, el("button", { id: "run-sql", on: { click: run } }, "Run")), status, links, out);
}

async function renderRecipe(_0, _1, show) {
  const shipped = await api("/api/recipes");
  const text = el("textarea", { id: "recipe" });
  const pick = el("select", { id: "recipe-pick", on: { change: e => { const r = shipped.find(s => s.name === e.target.value); if (r) text.value = r.text; } } },
    el("option", { value: "" }, "a shipped recipe…"), shipped.map(r => el("option", { value: r.name }, r.name)));
  const out = el("div", { id: "recipe-result" });
  const preview = async () => {
    out.replaceChildren(el("p", { class: "muted" }, "Planning…"));
    try {
      const r = await post(lakePath("recipe"), { recipe: text.value, version: state.version || null });
      const p = r.plan;
      out.replaceChildren(
        el("p", { id: "plan-id" }, `plan ${p.plan_id} over ${state.lake} version ${p.version}: ${p.samples} samples of ${p.sample_len} tokens, ${p.tokens} tokens`),
        el("h3", {}, "Stages"), table(["name", "samples", "tokens", "components"], p.stages, (s, c) => c === "components" ? s.components.map(x => `${x.name} ${x.weight}`).join(", ") : s[c]),
        el("h3", {}, "Components"), table(["name", "filter", "packing", "docs", "tokens", "epochs", "dropped_tokens_per_epoch", "padding_tokens_per_epoch"], p.components,
          (c, k) => k === "epochs" ? Number(c.epochs).toFixed(2) : c[k]),
        el("h3", {}, "First samples (document boundaries marked)"),
        ...r.samples.map(s => el("div", { class: "sample" },
          el("p", {}, `sample ${s.index}: ${s.stage} / ${s.component}, epoch ${s.epoch}`),
          el("pre", {}, s.pieces.map(pc => el("span", { class: "piece" }, el("span", { class: "boundary" }, `▶ document ${pc.doc_id} at position ${pc.position}, ${pc.len} tokens from token ${pc.offset}`), pc.text)),
            s.padding ? el("span", { class: "padding" }, `[${s.padding} padding tokens]`) : null))));
    } catch (err) { if (err.message !== "signed out") out.replaceChildren(error(err.message)); }
  };
  show(el("h2", {}, "Recipe preview"), pick, text, el("p", {}, el("button", { id: "preview", on: { click: preview } }, "Preview")), out);
}

async function renderEval(_0, _1, show) {
  show(el("p", { class: "muted" }, "Evaluating a sample of the version…"));
  const { report: r, plots } = await api(lakePath(`eval?${withVersion()}`));
  const dist = d => d ? `median ${Number(d.p50 ?? d.median ?? 0).toFixed(1)} (n = ${d.count})` : "—";
  show(el("h2", {}, `Evaluation of ${state.lake} version ${r.version}`),
    el("p", { id: "eval-summary" }, `${r.sampled} of ${r.lake_docs} documents sampled (seed ${r.seed}); ` +
      `${r.compliant ? "every rate complies" : "some rates do not comply"} with ${r.max_per_mille} per thousand`),
    el("h3", {}, "Ziya2's Table 1 rates"),
    table(["name", "description", "docs", "per_mille", "complies"], r.rates, (m, c) => c === "per_mille" ? Number(m.per_mille).toFixed(2) : m[c]),
    el("h3", {}, "Failing checks per thousand documents"),
    table(["check", "per thousand"], Object.entries(r.check_failures).map(([check, v]) => ({ check, "per thousand": Number(v).toFixed(1) }))),
    el("p", {}, `tokens per document: ${dist(r.tokens)}; words per sentence: ${dist(r.words_per_sentence)}`),
    ...plots.map(p => el("figure", {}, el("img", { src: p.src, alt: p.name }), el("figcaption", {}, p.name))));
}

start().catch(err => { if (err.message !== "signed out") show(error(err.message)); });
