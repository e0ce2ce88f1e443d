// Pieces more than one page shows: the status dot, the test report, the confirmation dialog.

import { fill, formatMs, h } from "../dom.js";

const DOT_TEXT = { success: "Last test succeeded", failure: "Last test failed", undefined: "Not tested in this session" };

export function statusDot(status) {
  const text = DOT_TEXT[status];
  return h("span", { class: `dot ${status || "unknown"}`, title: text, role: "img", "aria-label": text, "data-testid": "status-dot" });
}

// Report keys in the order the phases happen; sshMs only appears when a tunnel was used.
const PHASES = [
  ["sshMs", "SSH"], ["dnsMs", "DNS"], ["connectMs", "Connect"], ["tlsMs", "TLS"], ["authMs", "Auth"], ["queryMs", "Query"],
];

export function phaseBar(phases) {
  const present = PHASES.filter(([key]) => typeof phases?.[key] === "number");
  const total = present.reduce((sum, [key]) => sum + phases[key], 0) || 1;
  const bar = h("div", { class: "phase-bar", role: "img", "aria-label": present.map(([key, label]) => `${label} ${formatMs(phases[key])}`).join(", ") });
  for (const [key, label] of present) {
    const segment = h("span", { class: `phase ${key}`, title: `${label} ${formatMs(phases[key])}` });
    segment.style.flexGrow = String(Math.max(phases[key] / total, 0.01)); // CSSOM, allowed by the CSP
    bar.append(segment);
  }
  const legend = h("dl", { class: "phase-legend" }, present.map(([key, label]) =>
    h("div", { "data-phase": key }, h("dt", {}, h("span", { class: `swatch ${key}` }), label), h("dd", {}, formatMs(phases[key])))));
  return [bar, legend];
}

/** The test report, success or failure. `fixLink(field)` gives where to fix the field to blame. */
export function testReport(report, fixLink) {
  const ok = report.status === "success";
  const parts = [
    h("p", { class: `verdict ${ok ? "ok" : "bad"}`, "data-testid": "verdict" },
      ok ? `Connected in ${formatMs(report.latencyMs)}` : `Failed after ${formatMs(report.latencyMs)}: ${report.error?.category || "error"}`),
  ];
  if (!ok && report.error) {
    parts.push(h("p", { class: "cause", "data-testid": "cause" }, report.error.message));
    if (report.error.field) {
      parts.push(h("p", { class: "fix", "data-testid": "fix" }, "Field to fix: ",
        fixLink ? h("a", { href: fixLink(report.error.field) }, report.error.field) : h("strong", {}, report.error.field)));
    }
  }
  parts.push(...phaseBar(report.phases));
  const tls = report.tls?.enabled ? [report.tls.version, report.tls.cipher].filter(Boolean).join(" · ") || "on" : "not used";
  parts.push(h("dl", { class: "facts" },
    h("div", {}, h("dt", {}, "Server version"), h("dd", { "data-testid": "server-version" }, report.serverVersion || "–")),
    h("div", {}, h("dt", {}, "TLS"), h("dd", { "data-testid": "tls" }, tls))));
  return parts;
}

/** A modal question; resolves true when the user confirms. Escape and Cancel say no. */
export function confirmDialog({ title, message, confirm }) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" });
    const close = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    fill(dialog,
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, message),
      h("div", { class: "actions" },
        h("button", { type: "button", on: { click: () => close(false) }, autofocus: true }, "Cancel"),
        h("button", { type: "button", class: "danger", on: { click: () => close(true) }, "data-testid": "confirm" }, confirm)));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}
