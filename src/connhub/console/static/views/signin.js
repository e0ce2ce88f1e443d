import { api, token } from "../api.js";
import { fill, h } from "../dom.js";
import { state } from "../state.js";

export async function signInView(page, { onSignedIn }) {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "token-help token-error" });
  const errorLine = h("p", { id: "token-error", class: "field-error", role: "alert" }, state.notice || "");
  state.notice = null;
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, on: { submit: signIn } },
    h("h1", {}, "Sign in"),
    h("div", { class: "field" },
      h("label", { for: "token" }, "Bearer token"),
      input,
      h("p", { id: "token-help", class: "help" }, "A JWT from your identity provider. It is kept in this tab only (session storage) and sent as Authorization: Bearer."),
      errorLine),
    h("div", { class: "actions" }, submit),
  );

  async function signIn(event) {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      errorLine.textContent = "Paste a token first.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    try {
      const session = await api.session(value);
      token.set(value);
      input.value = "";
      onSignedIn(session);
    } catch (error) {
      errorLine.textContent = error.message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
    }
  }

  fill(page, form);
  input.dataset.focus = "";
}
