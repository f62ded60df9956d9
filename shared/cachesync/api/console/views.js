// The console's views. Each render function fills the main element and reports failures
// through ctx.fail(error) (which shows the problem, or returns to sign in on 401/403).

import { callJson, call, documentPath, downloadCsv } from "./api.js";
import { breakdownChart, ratioGauge, syncLagChart, volumeChart, LAG_BUCKETS } from "./charts.js";
import { h, replace } from "./dom.js";

export const STATUSES = [
  "draft", "submitted", "approved", "scheduled", "in_progress", "completed", "cancelled",
  "published", "archived",
];
export const EVENT_TYPES = ["document.created", "document.updated", "document.deleted"];
const PAGE_SIZES = [10, 25, 50, 100];

// The documents view keeps its filters and its page tokens across visits to a document.
const documentsState = {
  filters: { customer: "", status: [], kind: "", since: "", until: "", limit: 25 },
  // tokens[i] opens page i + 1 (page 1 needs none); the last one is the current page's.
  tokens: [],
};

function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label", text: label }), control,
    hint ? h("span", { class: "field-hint", text: hint }) : null);
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function formatTime(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function inlineProblem(error) {
  return h("div", { class: "problem inline", attrs: { role: "alert" } },
    h("strong", { text: error.title || "Error" }), error.detail ? ` ${error.detail}` : "");
}

// ------------------------------------------------------------------ documents

export function renderDocuments(main, ctx) {
  const { filters } = documentsState;
  const customer = h("input", { name: "customer", value: filters.customer, attrs: { autocomplete: "off", placeholder: "any" } });
  const status = h("select", { name: "status", multiple: true, attrs: { size: 4 } },
    STATUSES.map((name) => h("option", { value: name, text: name, selected: filters.status.includes(name) })));
  const kind = h("select", { name: "kind" },
    [["", "any"], ["change", "change"], ["announcement", "announcement"]].map(([value, text]) =>
      h("option", { value, text, selected: filters.kind === value })));
  const since = h("input", { name: "since", type: "date", value: filters.since });
  const until = h("input", { name: "until", type: "date", value: filters.until });
  const limit = h("select", { name: "limit" },
    PAGE_SIZES.map((size) => h("option", { value: String(size), text: String(size), selected: filters.limit === size })));
  const form = h("form", { class: "filters", attrs: { "aria-label": "Filters" } },
    field("Customer", customer),
    field("Status", status, "Ctrl/⌘-click: several"),
    field("Kind", kind),
    field("Since", since),
    field("Until", until, "exclusive"),
    field("Page size", limit),
    h("div", { class: "filter-actions" },
      h("button", { class: "button", type: "submit", text: "Search" }),
      h("button", { class: "button secondary", type: "button", text: "Clear",
        on: { click: () => { documentsState.filters = { customer: "", status: [], kind: "", since: "", until: "", limit: 25 }; documentsState.tokens = []; renderDocuments(main, ctx); } } })),
  );
  const results = h("section", { class: "results", attrs: { "aria-live": "polite" } });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    documentsState.filters = {
      customer: customer.value.trim(),
      status: [...status.selectedOptions].map((option) => option.value),
      kind: kind.value,
      since: since.value,
      until: until.value,
      limit: Number(limit.value),
    };
    documentsState.tokens = [];
    loadPage(results, ctx);
  });
  replace(main, h("h1", { text: "Documents" }), form, results);
  loadPage(results, ctx);
}

// Each load of a container gets a number: an answer arriving after a newer load started (a
// double click, a second search) is dropped instead of overwriting the newer one.
const latestLoad = new WeakMap();

function startLoad(container) {
  const number = (latestLoad.get(container) || 0) + 1;
  latestLoad.set(container, number);
  return () => latestLoad.get(container) === number;
}

async function loadPage(results, ctx) {
  const { filters, tokens } = documentsState;
  const current = startLoad(results);
  for (const button of results.querySelectorAll("button")) button.disabled = true;
  replace(results, h("p", { class: "muted", text: "Loading…" }));
  let page;
  try {
    page = await callJson("documents", {
      query: {
        customer: filters.customer,
        status: filters.status,
        kind: filters.kind,
        since: filters.since,
        until: filters.until,
        limit: filters.limit,
        next_token: tokens[tokens.length - 1],
      },
    });
  } catch (error) {
    if (!current()) return;
    replace(results, inlineProblem(error));
    ctx.fail(error, { quiet: true });
    return;
  }
  if (!current()) return;
  const previous = h("button", { class: "button secondary", type: "button", text: "← Previous",
    disabled: tokens.length === 0, on: { click: () => { tokens.pop(); loadPage(results, ctx); } } });
  const next = h("button", { class: "button secondary", type: "button", text: "Next →",
    disabled: !page.next_token, on: { click: () => { tokens.push(page.next_token); loadPage(results, ctx); } } });
  const pager = h("div", { class: "pager" }, previous,
    h("span", { class: "page-number", text: `Page ${tokens.length + 1} · ${page.count} shown` }), next);
  if (!page.items.length) {
    replace(results, h("p", { class: "empty", text: "No documents match these filters." }), pager);
    return;
  }
  const rows = page.items.map((item) => {
    const open = () => { location.hash = `#document/${encodeURIComponent(item.key)}`; };
    return h("tr", { class: "clickable", on: { click: open } },
      h("td", {}, h("a", { href: `#document/${encodeURIComponent(item.key)}`, class: "doc-link", text: item.key })),
      h("td", { text: item.title || "" }),
      h("td", { text: item.kind || "" }),
      h("td", {}, item.status ? h("span", { class: `badge status-${item.status}`, text: item.status }) : ""),
      h("td", { text: (item.customers || []).join(", ") }),
      h("td", { class: "nowrap", text: formatTime(item.index_time) }));
  });
  const table = h("div", { class: "table-wrap" }, h("table", { class: "table documents" },
    h("thead", {}, h("tr", {}, ["Key", "Title", "Kind", "Status", "Customers", "Index time"].map((name) => h("th", { text: name, attrs: { scope: "col" } })))),
    h("tbody", {}, rows)));
  replace(results, table, pager);
}

// ------------------------------------------------------------------ one document

export async function renderDocument(main, ctx, key) {
  const back = h("a", { href: "#documents", class: "back", text: "← Documents" });
  replace(main, back, h("h1", { class: "doc-title", text: key }), h("p", { class: "muted", text: "Loading…" }));
  let result;
  try {
    result = await callJson(documentPath(key));
  } catch (error) {
    replace(main, back, h("h1", { class: "doc-title", text: key }), inlineProblem(error));
    ctx.fail(error, { quiet: true });
    return;
  }
  const doc = result.document || {};
  const summary = [
    ["Title", doc.title], ["Kind", result.kind], ["Document id", result.doc_id],
    ["Status", doc.status], ["Customers", (result.customers || []).join(", ")],
    ["Bucket", result.bucket], ["ETag", result.etag], ["Version", result.version_id || "—"],
    ["Read from", result.source], ["Modified", doc.modified_at],
  ];
  replace(main, back, h("h1", { class: "doc-title", text: result.key }),
    h("dl", { class: "summary" }, summary.filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([name, value]) => [h("dt", { text: name }), h("dd", { text: String(value) })])),
    h("h2", { text: "JSON" }),
    h("pre", { class: "json", attrs: { tabindex: "0", "aria-label": "The document's JSON" } }, JSON.stringify(doc, null, 2)));
}

// ------------------------------------------------------------------ analytics

export function renderAnalytics(main, ctx) {
  const today = new Date();
  const monthAgo = new Date(today.getTime() - 29 * 86400_000);
  const since = h("input", { type: "date", name: "since", value: isoDay(monthAgo), required: true });
  const until = h("input", { type: "date", name: "until", value: isoDay(today), required: true });
  const customer = h("input", { name: "customer", attrs: { placeholder: "any", autocomplete: "off" } });
  const kind = h("select", { name: "kind" }, [["", "any"], ["change", "change"], ["announcement", "announcement"]]
    .map(([value, text]) => h("option", { value, text })));
  const metric = h("select", { name: "metric" }, ["created", "updated", "deleted", "entered", "left"]
    .map((name) => h("option", { value: name, text: name })));
  const by = h("select", { name: "by" }, ["customer", "status", "kind"].map((name) => h("option", { value: name, text: name })));
  const form = h("form", { class: "filters", attrs: { "aria-label": "Period" } },
    field("Since", since), field("Until", until), field("Customer", customer), field("Kind", kind),
    field("Volume metric", metric), field("Breakdown by", by),
    h("div", { class: "filter-actions" }, h("button", { class: "button", type: "submit", text: "Show" })));
  const sections = {
    volume: h("section", { class: "card" }),
    breakdown: h("section", { class: "card" }),
    transitions: h("section", { class: "card" }),
    lag: h("section", { class: "card" }),
    cache: h("section", { class: "card" }),
  };
  const load = () => {
    const period = { since: since.value, until: until.value };
    section(sections.volume, ctx, "Volume", "analytics/volume",
      { ...period, customer: customer.value.trim(), kind: kind.value },
      (data) => volumeChart(data.days || [], metric.value));
    section(sections.breakdown, ctx, `Breakdown by ${by.value}`, "analytics/breakdown", { ...period, by: by.value },
      (data) => breakdownChart(data.by || by.value, data.rows || [], "net"));
    section(sections.transitions, ctx, "Status transitions", "analytics/transitions", period,
      (data) => transitionsTable(data.transitions || []));
    section(sections.lag, ctx, "Sync lag", "analytics/sync-lag", period,
      (data) => [syncLagChart(data.days || []), lagTable(data.days || [])]);
    cacheSection(sections.cache, ctx);
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  replace(main, h("h1", { text: "Analytics" }), form, h("div", { class: "cards" }, Object.values(sections)));
  load();
}

async function section(container, ctx, title, path, query, draw) {
  const current = startLoad(container);
  const heading = h("div", { class: "card-head" }, h("h2", { text: title }));
  replace(container, heading, h("p", { class: "muted", text: "Loading…" }));
  const csv = h("button", { class: "button link", type: "button", text: "Download CSV",
    on: { click: async () => {
      try {
        await downloadCsv(path, query, `${path.replace("/", "-")}-${query.since}-${query.until}.csv`);
      } catch (error) { ctx.fail(error); }
    } } });
  heading.append(csv);
  try {
    const data = await callJson(path, { query });
    if (current()) replace(container, heading, draw(data));
  } catch (error) {
    if (!current()) return;
    replace(container, heading, inlineProblem(error));
    ctx.fail(error, { quiet: true });
  }
}

function transitionsTable(transitions) {
  if (!transitions.length) return h("p", { class: "empty", text: "No status transitions in this period." });
  return h("table", { class: "table compact" },
    h("thead", {}, h("tr", {}, ["From", "To", "Count"].map((name) => h("th", { text: name, attrs: { scope: "col" } })))),
    h("tbody", {}, [...transitions].sort((a, b) => b.count - a.count).map((row) => h("tr", {},
      h("td", { text: row.from_status || "(new)" }), h("td", { text: row.to_status || "(gone)" }),
      h("td", { class: "number", text: String(row.count) })))));
}

function lagTable(days) {
  if (!days.length) return null;
  return h("table", { class: "table compact" },
    h("thead", {}, h("tr", {}, ["Day", "Changes", "Mean", ...LAG_BUCKETS.map(([, label]) => label)]
      .map((name) => h("th", { text: name, attrs: { scope: "col" } })))),
    h("tbody", {}, days.map((row) => h("tr", {},
      h("td", { class: "nowrap", text: row.day }), h("td", { class: "number", text: String(row.count) }),
      h("td", { class: "number", text: row.mean_ms === null || row.mean_ms === undefined ? "—" : `${Math.round(row.mean_ms)} ms` }),
      LAG_BUCKETS.map(([name]) => h("td", { class: "number", text: String((row.buckets || {})[name] || 0) }))))));
}

async function cacheSection(container, ctx) {
  replace(container, h("div", { class: "card-head" }, h("h2", { text: "Cache hit ratio" })),
    h("p", { class: "muted", text: "Loading…" }));
  try {
    // /v1/health answers 503 with the same body when the index is unreachable.
    const response = await call("health", { key: null }).catch((error) => {
      if (error.status === 503 && error.problem && error.problem.cache) return { json: async () => error.problem };
      throw error;
    });
    const health = await response.json();
    const cache = health.cache || {};
    replace(container, h("div", { class: "card-head" }, h("h2", { text: "Cache hit ratio" })),
      ratioGauge({ title: "Cache hit ratio of this API process", ratio: cache.hit_ratio,
        detail: `${cache.hits || 0} hits, ${cache.misses || 0} misses` }));
  } catch (error) {
    replace(container, h("div", { class: "card-head" }, h("h2", { text: "Cache hit ratio" })), inlineProblem(error));
    ctx.fail(error, { quiet: true });
  }
}

// ------------------------------------------------------------------ webhooks

export function renderWebhooks(main, ctx) {
  const list = h("section", { class: "card" });
  const detail = h("section", { class: "card", hidden: true });
  const secretBox = h("div", { class: "secret", hidden: true, attrs: { role: "status" } });
  const url = h("input", { name: "url", type: "url", required: true, attrs: { placeholder: "https://example.com/hooks/cachesync" } });
  const types = EVENT_TYPES.map((name) => h("input", { type: "checkbox", name: "event_types", value: name, checked: true }));
  const customers = h("input", { name: "customers", attrs: { placeholder: "any (comma list)" } });
  const kinds = h("input", { name: "kinds", attrs: { placeholder: "any (comma list)" } });
  const statuses = h("input", { name: "statuses", attrs: { placeholder: "any (comma list)" } });
  const form = h("form", { class: "filters", attrs: { "aria-label": "Add a webhook" } },
    h("label", { class: "field wide" }, h("span", { class: "field-label", text: "Endpoint URL" }), url),
    h("fieldset", { class: "field checks" }, h("legend", { class: "field-label", text: "Events" }),
      types.map((box) => h("label", { class: "check" }, box, box.value))),
    field("Customers", customers), field("Kinds", kinds), field("Statuses", statuses),
    h("div", { class: "filter-actions" }, h("button", { class: "button", type: "submit", text: "Add webhook" })));
  const list_ = (value) => value.split(",").map((item) => item.trim()).filter(Boolean);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await callJson("webhooks", { method: "POST", body: {
        url: url.value.trim(),
        event_types: types.filter((box) => box.checked).map((box) => box.value),
        filters: { customers: list_(customers.value), kinds: list_(kinds.value), statuses: list_(statuses.value) },
      } });
      showSecret(secretBox, "Signing secret of the new webhook", created.secret);
      form.reset();
      loadWebhooks(list, detail, secretBox, ctx);
    } catch (error) { ctx.fail(error); }
  });
  replace(main, h("h1", { text: "Webhooks" }), secretBox,
    h("section", { class: "card" }, h("h2", { text: "Add a webhook" }), form), list, detail);
  loadWebhooks(list, detail, secretBox, ctx);
}

function showSecret(box, label, secret) {
  const value = h("code", { class: "secret-value", text: secret });
  const copy = h("button", { class: "button secondary", type: "button", text: "Copy",
    on: { click: async () => {
      try { await navigator.clipboard.writeText(secret); copy.textContent = "Copied"; }
      catch { copy.textContent = "Select and copy it by hand"; }
    } } });
  replace(box, h("p", {}, h("strong", { text: label }), " (shown once: store it now)"), h("div", { class: "secret-row" }, value, copy),
    h("button", { class: "button link", type: "button", text: "Done", on: { click: () => { replace(box); box.hidden = true; } } }));
  box.hidden = false;
}

async function loadWebhooks(list, detail, secretBox, ctx) {
  replace(list, h("h2", { text: "Subscriptions" }), h("p", { class: "muted", text: "Loading…" }));
  let data;
  try {
    data = await callJson("webhooks");
  } catch (error) {
    replace(list, h("h2", { text: "Subscriptions" }), inlineProblem(error));
    ctx.fail(error, { quiet: true });
    return;
  }
  const items = data.items || [];
  if (!items.length) {
    replace(list, h("h2", { text: "Subscriptions" }), h("p", { class: "empty", text: "No webhooks yet." }));
    return;
  }
  const reload = () => loadWebhooks(list, detail, secretBox, ctx);
  const rows = items.map((hook) => {
    const filters = hook.filters || {};
    const described = ["customers", "kinds", "statuses"].filter((name) => (filters[name] || []).length)
      .map((name) => `${name}: ${filters[name].join(", ")}`).join("; ") || "all documents";
    const act = (text, handler, cls = "secondary") => h("button", { class: `button small ${cls}`, type: "button", text, on: { click: handler } });
    return h("tr", {},
      h("td", { class: "break", text: hook.url }),
      h("td", { text: (hook.event_types || []).join(", ") }),
      h("td", { text: described }),
      h("td", {}, h("span", { class: `badge hook-${hook.status}`, text: hook.status || "" })),
      h("td", { class: "number", text: String(hook.consecutive_failures ?? 0) }),
      h("td", { class: "nowrap", text: formatTime(hook.created_at) }),
      h("td", {}, h("div", { class: "actions" },
        act("Test", () => testHook(hook, detail, ctx)),
        act("Deliveries", () => showDeliveries(hook, detail, ctx)),
        act("Rotate secret", async () => {
          try {
            const rotated = await callJson(`webhooks/${encodeURIComponent(hook.id)}/rotate-secret`, { method: "POST" });
            showSecret(secretBox, `New secret of ${hook.url} (the previous one works until ${formatTime(rotated.previous_secret_valid_until)})`, rotated.secret);
          } catch (error) { ctx.fail(error); }
        }),
        act("Delete", async () => {
          if (!confirm(`Delete the webhook to ${hook.url}?`)) return;
          try {
            await call(`webhooks/${encodeURIComponent(hook.id)}`, { method: "DELETE" });
            reload();
          } catch (error) { ctx.fail(error); }
        }, "danger"))));
  });
  replace(list, h("h2", { text: "Subscriptions" }), h("div", { class: "table-wrap" }, h("table", { class: "table" },
    h("thead", {}, h("tr", {}, ["URL", "Events", "Filters", "Status", "Failures", "Created", ""].map((name) => h("th", { text: name, attrs: { scope: "col" } })))),
    h("tbody", {}, rows))));
}

async function testHook(hook, detail, ctx) {
  detail.hidden = false;
  replace(detail, h("h2", { text: `Test delivery to ${hook.url}` }), h("p", { class: "muted", text: "Sending…" }));
  try {
    const result = await callJson(`webhooks/${encodeURIComponent(hook.id)}/test`, { method: "POST" });
    replace(detail, h("h2", { text: `Test delivery to ${hook.url}` }),
      h("p", { class: result.delivered ? "ok" : "bad", text: result.delivered ? "Delivered" : "Not delivered" }),
      h("dl", { class: "summary" },
        h("dt", { text: "Status code" }), h("dd", { text: String(result.status_code ?? "—") }),
        h("dt", { text: "Latency" }), h("dd", { text: result.latency_ms === null || result.latency_ms === undefined ? "—" : `${result.latency_ms} ms` }),
        h("dt", { text: "Error" }), h("dd", { text: result.error || "—" })));
  } catch (error) {
    replace(detail, h("h2", { text: `Test delivery to ${hook.url}` }), inlineProblem(error));
    ctx.fail(error, { quiet: true });
  }
}

async function showDeliveries(hook, detail, ctx) {
  detail.hidden = false;
  replace(detail, h("h2", { text: `Recent deliveries to ${hook.url}` }), h("p", { class: "muted", text: "Loading…" }));
  try {
    const data = await callJson(`webhooks/${encodeURIComponent(hook.id)}/deliveries`);
    const items = data.items || [];
    replace(detail, h("h2", { text: `Recent deliveries to ${hook.url}` }), items.length
      ? h("table", { class: "table compact" },
        h("thead", {}, h("tr", {}, ["At", "Attempt", "Status code", "Latency", "Error"].map((name) => h("th", { text: name, attrs: { scope: "col" } })))),
        h("tbody", {}, items.map((row) => h("tr", {},
          h("td", { class: "nowrap", text: formatTime(row.at) }), h("td", { class: "number", text: String(row.attempt) }),
          h("td", { class: "number", text: String(row.status_code ?? "—") }),
          h("td", { class: "number", text: row.latency_ms === null || row.latency_ms === undefined ? "—" : `${row.latency_ms} ms` }),
          h("td", { text: row.error || "" })))))
      : h("p", { class: "empty", text: "No deliveries yet." }));
  } catch (error) {
    replace(detail, h("h2", { text: `Recent deliveries to ${hook.url}` }), inlineProblem(error));
    ctx.fail(error, { quiet: true });
  }
}
