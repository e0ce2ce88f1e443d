// Create, edit and duplicate. The server is the one judge of what is valid: the form sends what the
// user typed and shows each reason of a 400 next to its field. Secrets are never read back: edit
// leaves the password empty (empty keeps it), and certificates show only whether one is held.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { ENGINES, SSL_MODES, parseConnectionString } from "../engines.js";
import { go } from "../router.js";
import { state } from "../state.js";
import { missing } from "./detail.js";
import { testReport } from "./parts.js";

const PEMS = [["ca", "CA certificate"], ["cert", "Client certificate"], ["key", "Client private key"]];
const NAME_TAKEN = "CONN-1006";

export function formView(mode) {
  return async (page, { params, query }) => {
    if (!state.canWrite) {
      fill(page, h("div", { class: "state error", role: "alert" }, h("h1", {}, "Read-only"), h("p", {}, "Your token has no connections:write scope, so it cannot change connections."), h("p", {}, h("a", { href: "#/" }, "Back to the connections"))));
      return;
    }
    let source = null;
    let etag = null;
    if (mode !== "create") {
      try {
        ({ data: source, etag } = await api.get(params.id));
      } catch (error) {
        fill(page, missing(error));
        return;
      }
    }
    new ConnectionForm(page, mode, source, etag).show(query.get("fix"));
  };
}

class ConnectionForm {
  constructor(page, mode, source, etag) {
    this.page = page;
    this.mode = mode; // "create" | "edit" | "duplicate"
    this.source = source;
    this.etag = etag;
    this.fields = new Map(); // API field name -> {input, error, wrap}
    this.pems = {}; // ssl.ca/cert/key -> PEM text read in the browser, until sent
  }

  show(fix) {
    const s = this.source;
    const title = { create: "New connection", edit: `Edit ${s?.configName}`, duplicate: `Duplicate ${s?.configName}` }[this.mode];
    this.summary = h("div", { class: "error-summary", role: "alert", tabindex: "-1", hidden: true });
    this.testOut = h("div", { class: "test-body", "aria-live": "polite" });
    this.saveButton = h("button", { type: "submit", class: "primary", "data-testid": "save" }, this.mode === "edit" ? "Save changes" : "Create connection");
    const engine = s?.type || "POSTGRESQL";
    this.form = h("form", { class: "connection-form", novalidate: true, on: { submit: (event) => { event.preventDefault(); this.save(); } } },
      this.summary,
      this.mode === "edit" ? null : this.pasteSection(),
      h("fieldset", {}, h("legend", {}, "Connection"),
        this.text("configName", "Name", { value: this.mode === "duplicate" ? `${s.configName} (copy)` : s?.configName, autocomplete: "off", help: "3-100 characters, unique in your organization." }),
        this.mode === "edit"
          ? h("p", { class: "help" }, "Product: ", h("strong", {}, s.productName || "none (unassigned)"))
          : this.text("product", "Product", { value: s?.productName, help: "The X-Product-Name the connection belongs to: letters, digits, _ and -." }),
        this.engineSelect(engine),
        h("div", { class: "row" },
          this.text("host", "Host", { value: s?.host, autocomplete: "off", spellcheck: "false" }),
          this.text("port", "Port", { value: s ? String(s.port) : String(ENGINES[engine].port), inputmode: "numeric", class: "short" })),
        this.text("databaseName", ENGINES[engine].database, { value: s?.databaseName, autocomplete: "off" }),
        h("div", { class: "row" },
          this.text("userName", "User", { value: s?.userName, autocomplete: "off" }),
          this.text("password", "Password", {
            type: "password", autocomplete: "new-password",
            help: this.mode === "edit" ? "Leave empty to keep the stored password." : this.mode === "duplicate" ? "Required: a stored password can never be read back, so the copy needs it again." : null,
          })),
        this.text("schema", "Schema", { value: s?.schema, placeholder: ENGINES[engine].schema || "" })),
      this.tlsSection(),
      h("fieldset", {}, h("legend", {}, "Metadata"),
        this.text("metadata", "Metadata", { multiline: true, value: Object.entries(s?.metadata || {}).map(([k, v]) => `${k}=${v}`).join("\n"), help: "One key=value per line.", rows: 3 })),
      h("div", { class: "actions sticky" },
        this.saveButton,
        this.mode === "edit" ? null : h("button", { type: "button", on: { click: () => this.testUnsaved() }, "data-testid": "test-unsaved" }, "Test without saving"),
        h("a", { class: "button", href: s ? `#/c/${s.id}` : "#/" }, "Cancel")),
      h("section", { class: "test-panel", "aria-label": "Test result" }, this.testOut));
    fill(this.page, h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Connections")), h("h1", {}, title), this.form);
    this.applyEngine(engine);
    if (fix) this.markToFix(fix, "The last test failed here.");
    else this.fields.get("configName").input.dataset.focus = "";
  }

  // -- building --------------------------------------------------------------------------------

  text(name, label, { value, help, multiline, class: extra, ...attrs } = {}) {
    const id = `field-${name}`;
    const input = multiline ? h("textarea", { id, name, ...attrs }) : h("input", { id, name, type: "text", ...attrs });
    if (value !== undefined && value !== null) input.value = value;
    return this.register(name, label, input, help, extra);
  }

  register(name, label, input, help, extra) {
    const id = input.id;
    const error = h("p", { id: `${id}-error`, class: "field-error" });
    const helpLine = help ? h("p", { id: `${id}-help`, class: "help" }, help) : null;
    input.setAttribute("aria-describedby", [helpLine && `${id}-help`, `${id}-error`].filter(Boolean).join(" "));
    const labelNode = h("label", { for: id }, label);
    const wrap = h("div", { class: `field ${extra || ""}`, "data-field": name }, labelNode, input, helpLine, error);
    this.fields.set(name, { input, error, wrap, label: labelNode });
    return wrap;
  }

  engineSelect(engine) {
    const select = h("select", { id: "field-type", name: "type", on: { change: () => this.applyEngine(select.value) } },
      Object.entries(ENGINES).map(([key, e]) => h("option", { value: key, selected: key === engine }, e.label)));
    return this.register("type", "Engine", select);
  }

  applyEngine(engine) {
    const spec = ENGINES[engine];
    const port = this.fields.get("port").input;
    const defaults = Object.values(ENGINES).map((e) => String(e.port));
    if (!port.value || defaults.includes(port.value)) port.value = String(spec.port);
    this.fields.get("databaseName").label.textContent = spec.database;
    const schema = this.fields.get("schema");
    schema.wrap.hidden = spec.schema === null && !schema.input.value;
    schema.input.placeholder = spec.schema || "";
    this.engine = engine;
  }

  pasteSection() {
    const input = h("textarea", { id: "field-connectionString", name: "connectionString", rows: 2, spellcheck: "false", autocomplete: "off", placeholder: "postgresql://user:password@host:5432/database" });
    const wrap = this.register("connectionString", "Paste a connection string", input, "It fills the fields below; the string itself is not kept.");
    const button = h("button", { type: "button", on: { click: () => this.fillFromString() }, "data-testid": "fill" }, "Fill the form");
    return h("fieldset", { class: "paste" }, h("legend", {}, "Quick start"), wrap, button);
  }

  fillFromString() {
    const entry = this.fields.get("connectionString");
    this.clearErrors();
    try {
      const { fields, ignored } = parseConnectionString(entry.input.value);
      this.fields.get("type").input.value = fields.type;
      this.applyEngine(fields.type);
      for (const name of ["host", "port", "databaseName", "userName", "password"]) {
        if (fields[name] !== undefined) this.fields.get(name).input.value = String(fields[name]);
      }
      if (SSL_MODES.includes(fields.sslMode)) this.fields.get("ssl.mode").input.value = fields.sslMode;
      entry.input.value = ""; // it may hold a password: do not leave it on the page
      entry.error.textContent = ignored.length ? `Filled the form. Not used: ${ignored.join(", ")}.` : "Filled the form.";
      entry.error.className = "field-note";
      this.fields.get("host").input.focus();
    } catch (problem) {
      this.showField("connectionString", problem.message);
    }
  }

  tlsSection() {
    const ssl = this.source?.ssl;
    const select = h("select", { id: "field-ssl.mode", name: "ssl.mode" },
      h("option", { value: "" }, "Driver default (no TLS settings)"),
      SSL_MODES.map((m) => h("option", { value: m, selected: ssl?.mode === m }, m)));
    const held = { ca: ssl?.hasCa, cert: ssl?.hasCert, key: ssl?.hasKey };
    return h("fieldset", {}, h("legend", {}, "TLS"),
      this.register("ssl.mode", "TLS mode", select, "verify-ca and verify-full check the server's certificate against the CA below."),
      PEMS.map(([part, label]) => this.pemField(part, label, held[part])));
  }

  pemField(part, label, held) {
    const name = `ssl.${part}`;
    const status = h("span", { class: "pem-status", "data-testid": `${name}-status` },
      held ? (this.mode === "duplicate" ? "The original holds one; it cannot be read back: upload it again." : "One is stored (never shown).") : "None.");
    const input = h("input", { id: `field-${name}`, name, type: "file", accept: ".pem,.crt,.cer,.key,text/plain" });
    input.addEventListener("change", async () => {
      const file = input.files[0];
      delete this.pems[name];
      if (!file) return;
      this.pems[name] = await file.text(); // read here; sent as PEM text in ssl.*, never shown
      status.textContent = `Will send ${file.name} (${Math.ceil(file.size / 1024)} KB).`;
    });
    const wrap = this.register(name, label, input, null, "pem");
    wrap.insertBefore(status, input.nextSibling);
    if (held && this.mode === "edit") {
      const remove = h("input", { id: `remove-${name}`, type: "checkbox", name: `remove-${name}` });
      this.removals = { ...this.removals, [name]: remove };
      wrap.append(h("div", { class: "check" }, remove, h("label", { for: `remove-${name}` }, `Remove the stored ${label.toLowerCase()}`)));
    }
    return wrap;
  }

  // -- reading ---------------------------------------------------------------------------------

  value(name) {
    return this.fields.get(name).input.value;
  }

  /** The body of a create (or of an unsaved test): every field the user filled. */
  createBody() {
    const body = {};
    const put = (name, value) => { if (value !== "" && value !== undefined) body[name] = value; };
    put("configName", this.value("configName").trim());
    put("type", this.value("type"));
    put("host", this.value("host").trim());
    put("port", portOf(this.value("port")));
    put("databaseName", this.value("databaseName"));
    put("userName", this.value("userName"));
    put("password", this.value("password"));
    if (!this.fields.get("schema").wrap.hidden) put("schema", this.value("schema").trim());
    const ssl = this.sslBody();
    if (ssl) body.ssl = ssl;
    const metadata = this.metadata();
    if (metadata && Object.keys(metadata).length) body.metadata = metadata;
    return body;
  }

  sslBody() {
    const mode = this.value("ssl.mode");
    if (!mode && !Object.keys(this.pems).length) return null;
    const ssl = mode ? { mode } : {};
    for (const [part] of PEMS) if (this.pems[`ssl.${part}`]) ssl[part] = this.pems[`ssl.${part}`];
    return ssl;
  }

  /** The body of a PATCH: only what changed (absent keeps, null clears). */
  patchBody() {
    const s = this.source;
    const body = {};
    for (const name of ["configName", "type", "host", "databaseName", "userName"]) {
      const value = name === "configName" || name === "host" ? this.value(name).trim() : this.value(name);
      if (value !== s[name]) body[name] = value;
    }
    if (this.value("port").trim() !== String(s.port)) body.port = portOf(this.value("port"));
    if (this.value("password")) body.password = this.value("password"); // empty keeps the stored one
    const schema = this.value("schema").trim();
    if (schema !== (s.schema || "")) body.schema = schema || null;
    const metadata = this.metadata();
    if (metadata && JSON.stringify(metadata) !== JSON.stringify(s.metadata || {})) {
      body.metadata = Object.keys(metadata).length ? metadata : null;
    }
    const ssl = this.sslPatch();
    if (ssl !== undefined) body.ssl = ssl;
    return body;
  }

  sslPatch() {
    const before = this.source.ssl;
    const mode = this.value("ssl.mode");
    if (!mode) return before ? null : this.sslBody() || undefined;
    const patch = {};
    if (mode !== before?.mode) patch.mode = mode;
    for (const [part] of PEMS) {
      const name = `ssl.${part}`;
      if (this.pems[name]) patch[part] = this.pems[name];
      else if (this.removals?.[name]?.checked) patch[part] = null;
    }
    return Object.keys(patch).length ? patch : undefined;
  }

  /** The metadata lines as an object, or null (with the reason shown) when a line is not key=value. */
  metadata() {
    const result = {};
    for (const line of this.value("metadata").split("\n").map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf("=");
      if (at <= 0) {
        this.showField("metadata", `"${line}" is not key=value`);
        return null;
      }
      result[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    return result;
  }

  // -- acting ----------------------------------------------------------------------------------

  async save() {
    this.clearErrors();
    const body = this.mode === "edit" ? this.patchBody() : this.createBody();
    if (this.hasErrors()) return this.focusFirstError();
    if (this.mode === "edit" && !Object.keys(body).length) {
      state.notice = "Nothing changed.";
      return go(`/c/${this.source.id}`);
    }
    await this.busy(this.saveButton, "Saving…", async () => {
      try {
        const saved = this.mode === "edit"
          ? await api.update(this.source.id, body, this.etag)
          : await api.create(body, this.value("product").trim());
        state.notice = this.mode === "edit" ? "Saved." : `Created ${saved.configName}.`;
        go(`/c/${saved.id}`);
      } catch (error) {
        this.showApiError(error);
      }
    });
  }

  async testUnsaved() {
    this.clearErrors();
    const body = this.createBody();
    if (this.hasErrors()) return this.focusFirstError();
    const button = this.form.querySelector("[data-testid=test-unsaved]");
    this.testOut.classList.add("stale");
    await this.busy(button, "Testing…", async () => {
      try {
        const report = await api.testUnsaved(body);
        fill(this.testOut, testReport(report, null));
        if (report.error?.field) this.markToFix(report.error.field, report.error.message);
      } catch (error) {
        fill(this.testOut);
        this.showApiError(error);
      }
    });
    this.testOut.classList.remove("stale");
  }

  async busy(button, text, work) {
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = text;
    try {
      await work();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  }

  // -- errors ----------------------------------------------------------------------------------

  showApiError(error) {
    const fields = { ...error.fields };
    if (error.code === NAME_TAKEN) fields.configName = error.message;
    if (error.status === 412) {
      return this.showSummary("This connection changed since you opened it. Reload the page to edit the new version.");
    }
    const general = [];
    for (const [name, reason] of Object.entries(fields)) {
      if (!this.showField(formFieldOf(name), reason)) general.push(`${name}: ${reason}`);
    }
    const labels = Object.keys(fields).map(formFieldOf).filter((name) => this.fields.has(name))
      .map((name) => this.fields.get(name).label.textContent);
    this.showSummary(labels.length ? `Please check: ${[...new Set(labels)].join(", ")}.` : error.message, general);
    this.focusFirstError();
  }

  showField(name, reason) {
    const entry = this.fields.get(name);
    if (!entry || entry.wrap.hidden) return false;
    entry.error.className = "field-error";
    entry.error.textContent = reason;
    entry.input.setAttribute("aria-invalid", "true");
    entry.wrap.classList.add("invalid");
    return true;
  }

  markToFix(field, reason) {
    const name = field === "ssl" ? "ssl.mode" : field;
    if (this.showField(name, reason)) {
      this.fields.get(name).wrap.classList.add("to-fix");
      const input = this.fields.get(name).input;
      if (input.isConnected) input.focus();
      else input.dataset.focus = ""; // focused once the page is shown
    }
  }

  showSummary(message, extra = []) {
    fill(this.summary, h("p", {}, message), extra.length ? h("ul", {}, extra.map((line) => h("li", {}, line))) : null);
    this.summary.hidden = false;
  }

  clearErrors() {
    this.summary.hidden = true;
    fill(this.summary);
    for (const entry of this.fields.values()) {
      entry.error.textContent = "";
      entry.error.className = "field-error";
      entry.input.removeAttribute("aria-invalid");
      entry.wrap.classList.remove("invalid", "to-fix");
    }
  }

  hasErrors() {
    return [...this.fields.values()].some((entry) => entry.wrap.classList.contains("invalid"));
  }

  focusFirstError() {
    const first = [...this.fields.values()].find((entry) => entry.wrap.classList.contains("invalid"));
    (first ? first.input : this.summary).focus();
  }
}

/** A port as the user typed it: a number when it is one, else the text (the server names the problem). */
function portOf(text) {
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

/** The form field that shows an API error field: metadata.team -> metadata, X-Product-Name -> product. */
function formFieldOf(name) {
  if (name === "X-Product-Name") return "product";
  if (name === "ssl") return "ssl.mode";
  if (name.startsWith("metadata.")) return "metadata";
  return name;
}
