// One connection: what is stored (never a secret), Test, and the ways to schema, edit, duplicate, delete.

import { api } from "../api.js";
import { fill, formatDate, h } from "../dom.js";
import { ENGINES } from "../engines.js";
import { go } from "../router.js";
import { state } from "../state.js";
import { confirmDialog, statusDot, testReport } from "./parts.js";

export async function detailView(page, { params }) {
  let connection;
  try {
    connection = (await api.get(params.id)).data;
  } catch (error) {
    fill(page, missing(error));
    return;
  }
  const id = connection.id;
  const facts = factList(connection);
  const panel = h("section", { class: "test-panel", "aria-labelledby": "test-title", "aria-live": "polite", "data-testid": "test-panel" },
    h("h2", { id: "test-title" }, "Live test"),
    h("div", { class: "test-body" }, h("p", { class: "muted" }, state.canWrite ? "Not tested yet in this session. Test opens a real connection from the server." : "Testing needs the connections:write scope.")));
  const dot = h("span", { class: "title-dot" }, statusDot(state.lastTests.get(id)));

  const testButton = h("button", { type: "button", class: "primary steady", on: { click: runTest }, "data-testid": "test" }, "Test");
  const actions = h("div", { class: "actions" },
    state.canWrite ? testButton : null,
    h("a", { class: "button", href: `#/c/${id}/schema` }, "Browse schema"),
    state.canWrite ? h("a", { class: "button", href: `#/c/${id}/edit`, "data-testid": "edit" }, "Edit") : null,
    state.canWrite ? h("a", { class: "button", href: `#/c/${id}/duplicate`, "data-testid": "duplicate" }, "Duplicate") : null,
    state.canWrite ? h("button", { type: "button", class: "danger", on: { click: remove }, "data-testid": "delete" }, "Delete") : null);

  fill(page,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Connections")),
    state.notice ? h("p", { class: "notice", role: "status" }, state.notice) : null,
    h("div", { class: "title-row" }, h("h1", {}, dot, connection.configName), actions),
    h("div", { class: "detail-grid" }, facts, panel));
  state.notice = null;

  async function runTest() {
    const body = panel.querySelector(".test-body");
    testButton.disabled = true;
    testButton.setAttribute("aria-busy", "true");
    testButton.textContent = "Testing…";
    body.classList.add("stale"); // the old result stays in place: no layout jump
    facts.querySelectorAll(".to-fix").forEach((node) => node.classList.remove("to-fix"));
    try {
      const report = await api.test(id);
      state.lastTests.set(id, report.status);
      fill(dot, statusDot(report.status));
      fill(body, testReport(report, (field) => `#/c/${id}/edit?fix=${encodeURIComponent(field)}`));
      const blamed = report.error?.field && facts.querySelector(`[data-field="${CSS.escape(report.error.field)}"]`);
      if (blamed) blamed.classList.add("to-fix");
      // On a narrow screen the panel sits below the facts: bring the result into view.
      if (panel.getBoundingClientRect().top > window.innerHeight) panel.scrollIntoView({ block: "start" });
    } catch (error) {
      fill(body, h("p", { class: "state error", role: "alert" }, error.status === 429 ? `Too many tests: ${error.message}` : error.message));
    } finally {
      body.classList.remove("stale");
      testButton.disabled = false;
      testButton.removeAttribute("aria-busy");
      testButton.textContent = "Test";
    }
  }

  async function remove() {
    const sure = await confirmDialog({
      title: `Delete ${connection.configName}?`,
      message: "Its secrets are wiped and it disappears from every list. Its name becomes free again.",
      confirm: "Delete",
    });
    if (!sure) return;
    try {
      await api.remove(id);
      state.lastTests.delete(id);
      state.notice = `Deleted ${connection.configName}.`;
      go("/");
    } catch (error) {
      fill(panel.querySelector(".test-body"), h("p", { class: "state error", role: "alert" }, `Not deleted: ${error.message}`));
    }
  }
}

export function missing(error) {
  return h("div", { class: "state error", role: "alert" },
    h("h1", {}, error.status === 404 ? "No such connection" : "The connection could not be loaded"),
    h("p", {}, error.message),
    h("p", {}, h("a", { href: "#/" }, "Back to the connections")));
}

function factList(connection) {
  const ssl = connection.ssl;
  const held = ssl ? [ssl.hasCa && "CA", ssl.hasCert && "client certificate", ssl.hasKey && "key"].filter(Boolean) : [];
  const rows = [
    ["type", "Engine", ENGINES[connection.type]?.label || connection.type],
    ["host", "Host", connection.host],
    ["port", "Port", String(connection.port)],
    ["databaseName", ENGINES[connection.type]?.database || "Database", connection.databaseName],
    ["userName", "User", connection.userName],
    ["password", "Password", "stored (never shown)"],
    ["schema", "Schema", connection.schema || "—"],
    ["ssl", "TLS", ssl ? `${ssl.mode}${held.length ? `, with ${held.join(", ")}` : ""}` : "driver default"],
    ["productName", "Product", connection.productName || "— (unassigned)"],
    ["metadata", "Metadata", Object.entries(connection.metadata || {}).map(([key, value]) => `${key}=${value}`).join(", ") || "—"],
    ["createdAt", "Created", formatDate(connection.createdAt)],
    ["updatedAt", "Updated", formatDate(connection.updatedAt)],
  ];
  return h("dl", { class: "facts card", "data-testid": "facts" },
    rows.map(([field, label, value]) => h("div", { "data-field": field }, h("dt", {}, label), h("dd", {}, value))));
}
