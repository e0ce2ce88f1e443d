// The schema browser: tables, then the columns of the one chosen (type, nullable, primary key).

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { missing } from "./detail.js";

export async function schemaView(page, { params }) {
  let connection;
  try {
    connection = (await api.get(params.id)).data;
  } catch (error) {
    fill(page, missing(error));
    return;
  }
  const body = h("div", { class: "schema", "aria-live": "polite" }, h("p", { class: "muted" }, "Reading the schema from the database…"));
  const refresh = h("button", { type: "button", on: { click: () => load(true) } }, "Read again");
  fill(page,
    h("p", { class: "crumbs" }, h("a", { href: `#/c/${connection.id}` }, `← ${connection.configName}`)),
    h("div", { class: "title-row" }, h("h1", {}, `Schema of ${connection.configName}`), h("div", { class: "actions" }, refresh)),
    body);

  async function load(again) {
    refresh.disabled = true;
    refresh.setAttribute("aria-busy", "true");
    body.classList.add("stale");
    try {
      const schema = await api.schema(connection.id, again);
      browser(body, schema.tables);
    } catch (error) {
      const cause = error.report?.error;
      fill(body, h("div", { class: "state error", role: "alert" },
        h("p", {}, "The schema could not be read."),
        h("p", { "data-testid": "cause" }, cause ? `${cause.category}: ${cause.message}` : error.message)));
    } finally {
      body.classList.remove("stale");
      refresh.disabled = false;
      refresh.removeAttribute("aria-busy");
    }
  }
  await load(false);
}

function browser(body, tables) {
  if (!tables.length) {
    fill(body, h("div", { class: "state empty" }, h("p", { class: "big" }, "No tables."), h("p", {}, "The database (or its schema) holds no table this user can see.")));
    return;
  }
  const search = h("input", { id: "schema-search", type: "search", placeholder: "table or column name", autocomplete: "off" });
  const list = h("ul", { class: "table-list", "aria-label": "Tables" });
  const columns = h("div", { class: "columns", "aria-live": "polite" });
  let chosen = tables[0].name;

  const show = () => {
    const needle = search.value.trim().toLowerCase();
    const matches = (table) => !needle || table.name.toLowerCase().includes(needle)
      || table.columns.some((column) => column.name.toLowerCase().includes(needle));
    const visible = tables.filter(matches);
    fill(list, visible.length ? visible.map((table) => h("li", {},
      h("button", { type: "button", class: table.name === chosen ? "table current" : "table", "aria-pressed": String(table.name === chosen), on: { click: () => { chosen = table.name; show(); } } },
        h("span", {}, table.name), h("span", { class: "count" }, `${table.columns.length}`)))) : h("li", { class: "muted" }, "No table or column matches."));
    const table = tables.find((t) => t.name === chosen);
    fill(columns, table ? columnTable(table, needle) : null);
  };
  search.addEventListener("input", show);
  fill(body,
    h("div", { class: "field" }, h("label", { for: "schema-search" }, `Search ${tables.length} tables`), search),
    h("div", { class: "schema-grid" }, list, columns));
  show();
}

function columnTable(table, needle) {
  return h("table", { class: "column-table", "data-testid": "columns" },
    h("caption", {}, table.name),
    h("thead", {}, h("tr", {}, ["Column", "Type", "Nullable", "Key"].map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, table.columns.map((column) => h("tr", { class: needle && column.name.toLowerCase().includes(needle) ? "hit" : "" },
      h("td", { "data-label": "Column" }, column.name),
      h("td", { "data-label": "Type" }, h("code", {}, column.type)),
      h("td", { "data-label": "Nullable" }, column.nullable ? "yes" : "no"),
      h("td", { "data-label": "Key" }, column.primaryKey ? "primary" : "")))));
}
