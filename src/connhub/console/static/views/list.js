// The list: search, filters, sort and keyset paging (cursor / nextCursor), so a page deep in
// 100,000 connections costs what the first one does.

import { api } from "../api.js";
import { fill, formatDate, h } from "../dom.js";
import { ENGINES } from "../engines.js";
import { state } from "../state.js";
import { statusDot } from "./parts.js";

const PAGE_SIZE = 50;
const SORTS = {
  "createdAt:desc": "Newest first",
  "createdAt:asc": "Oldest first",
  "configName:asc": "Name A–Z",
  "configName:desc": "Name Z–A",
};

// Kept while the tab is open, so coming back to the list shows the same filters and page.
const view = {
  filters: { configName: "", type: "", host: "", product: "", metadata: "", sort: "createdAt:desc" },
  cursors: [null], // cursors[i] opens page i+1
};

export async function listView(page) {
  const results = h("div", { class: "results", "aria-live": "polite" });
  const notice = state.notice ? h("p", { class: "notice", role: "status" }, state.notice) : null;
  state.notice = null;
  fill(
    page,
    h("div", { class: "title-row" },
      h("h1", {}, "Connections"),
      state.canWrite ? h("a", { class: "button primary", href: "#/new", "data-testid": "new" }, "New connection") : null),
    notice,
    filtersForm(() => { view.cursors = [null]; load(); }),
    results,
  );

  async function load() {
    const at = view.cursors.length - 1;
    results.classList.add("stale");
    try {
      const found = await api.list(listQuery(view.cursors[at]), view.filters.product.trim());
      renderResults(results, found, at, {
        next: () => { view.cursors.push(found.nextCursor); load(); },
        previous: () => { view.cursors.pop(); load(); },
      });
    } catch (error) {
      fill(results, h("div", { class: "state error", role: "alert" },
        h("p", {}, `The connections could not be loaded: ${error.message}`),
        fieldProblems(error),
        h("button", { type: "button", on: { click: load } }, "Retry")));
    } finally {
      results.classList.remove("stale");
    }
  }
  await load();
}

function listQuery(cursor) {
  const { configName, type, host, metadata, sort } = view.filters;
  const [sortBy, sortOrder] = sort.split(":");
  const query = { limit: PAGE_SIZE, sortBy, sortOrder, configName: configName.trim(), type, host: host.trim(), cursor };
  const [key, ...value] = metadata.split("=");
  if (key.trim() && value.length) query[`metadata.${key.trim()}`] = value.join("=").trim();
  return query;
}

function fieldProblems(error) {
  const entries = Object.entries(error.fields || {});
  return entries.length ? h("ul", {}, entries.map(([name, reason]) => h("li", {}, `${name}: ${reason}`))) : null;
}

function filtersForm(onChange) {
  let timer = null;
  const changed = (event) => {
    view.filters[event.target.name] = event.target.value;
    clearTimeout(timer);
    // Typing waits for a pause; a choice in a menu applies at once.
    timer = setTimeout(onChange, event.target.tagName === "SELECT" ? 0 : 300);
  };
  const text = (name, label, placeholder) => h("div", { class: "field" },
    h("label", { for: `filter-${name}` }, label),
    h("input", { id: `filter-${name}`, name, type: "search", value: view.filters[name], placeholder, on: { input: changed } }));
  const select = (name, label, options) => h("div", { class: "field" },
    h("label", { for: `filter-${name}` }, label),
    h("select", { id: `filter-${name}`, name, on: { change: changed } },
      Object.entries(options).map(([value, text]) => h("option", { value, selected: view.filters[name] === value }, text))));
  return h("form", { class: "filters", role: "search", on: { submit: (event) => { event.preventDefault(); onChange(); } } },
    text("configName", "Search by name", "name contains…"),
    select("type", "Engine", { "": "All engines", ...Object.fromEntries(Object.entries(ENGINES).map(([key, engine]) => [key, engine.label])) }),
    text("host", "Host", "exact host"),
    text("product", "Product", "product name"),
    text("metadata", "Metadata", "key=value"),
    select("sort", "Sort", SORTS));
}

function renderResults(results, found, at, paging) {
  if (found.items.length === 0) {
    const filtered = Object.entries(view.filters).some(([name, value]) => name !== "sort" && value.trim());
    fill(results, h("div", { class: "state empty" },
      h("p", { class: "big" }, filtered ? "No connection matches these filters." : "No connections yet."),
      filtered ? h("p", {}, "Change or clear the filters above.")
        : state.canWrite ? h("p", {}, h("a", { href: "#/new" }, "Create the first connection")) : h("p", {}, "Connections created through the API show up here.")));
    return;
  }
  const first = at * PAGE_SIZE + 1;
  const last = at * PAGE_SIZE + found.items.length;
  const table = h("table", { class: "connections" },
    h("caption", { class: "sr-only" }, "Connections"),
    h("thead", {}, h("tr", {}, ["", "Name", "Engine", "Host", "Database", "Product", "Created"].map((title) =>
      h("th", { scope: "col" }, title || h("span", { class: "sr-only" }, "Last test"))))),
    h("tbody", {}, found.items.map(row)));
  fill(results,
    h("div", { class: "table-wrap" }, table),
    h("nav", { class: "pager", "aria-label": "Pages" },
      h("button", { type: "button", disabled: at === 0, on: { click: paging.previous }, "data-testid": "previous" }, "← Previous"),
      h("span", { "data-testid": "range" }, `${first.toLocaleString()}–${last.toLocaleString()} of ${found.total.toLocaleString()}`),
      h("button", { type: "button", disabled: !found.nextCursor, on: { click: paging.next }, "data-testid": "next" }, "Next →")));
}

function row(connection) {
  const engine = ENGINES[connection.type]?.label || connection.type;
  return h("tr", {},
    h("td", { class: "dot-cell" }, statusDot(state.lastTests.get(connection.id))),
    h("td", { "data-label": "Name" }, h("a", { href: `#/c/${connection.id}`, class: "name" }, connection.configName)),
    h("td", { "data-label": "Engine" }, engine),
    h("td", { "data-label": "Host" }, `${connection.host}:${connection.port}`),
    h("td", { "data-label": "Database" }, connection.databaseName),
    h("td", { "data-label": "Product" }, connection.productName || "—"),
    h("td", { "data-label": "Created" }, h("time", { datetime: connection.createdAt }, formatDate(connection.createdAt))));
}
