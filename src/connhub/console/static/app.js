// Boot: find out who we are (GET /v1/session), then route. With auth disabled the console opens
// straight away; otherwise it asks for a bearer token.

import { api, token } from "./api.js";
import { fill, h } from "./dom.js";
import { route, start } from "./router.js";
import { state } from "./state.js";
import { detailView } from "./views/detail.js";
import { formView } from "./views/form.js";
import { listView } from "./views/list.js";
import { schemaView } from "./views/schema.js";
import { signInView } from "./views/signin.js";

const main = document.getElementById("main");

route("/", listView);
route("/new", formView("create"));
route("/c/:id", detailView);
route("/c/:id/edit", formView("edit"));
route("/c/:id/duplicate", formView("duplicate"));
route("/c/:id/schema", schemaView);

function showWho() {
  const who = document.getElementById("who");
  const session = state.session;
  if (!session) return fill(who);
  fill(
    who,
    h("span", { class: "tenant" }, "Tenant ", h("strong", { "data-testid": "tenant" }, session.tenant)),
    state.canWrite ? null : h("span", { class: "badge", "data-testid": "read-only" }, "read-only"),
    session.authEnabled ? h("button", { type: "button", class: "link", on: { click: signOut } }, "Sign out") : null,
  );
}

function signOut() {
  token.clear();
  state.session = null;
  state.lastTests.clear();
  showWho();
  renderPage(null);
}

async function signedIn(session) {
  state.session = session;
  showWho();
  start(renderPage);
}

let generation = 0;
async function renderPage(match) {
  generation += 1;
  const mine = generation;
  main.setAttribute("aria-busy", "true");
  const page = h("div", { class: "page" });
  try {
    if (!state.session) {
      await signInView(page, { onSignedIn: signedIn });
    } else if (!match) {
      fill(page, h("h1", {}, "Not found"), h("p", {}, "This page does not exist. ", h("a", { href: "#/" }, "Go to the connections")));
    } else {
      await match.view(page, match);
    }
  } catch (error) {
    fill(page, h("div", { class: "state error", role: "alert" }, h("h1", {}, "Something went wrong"), h("p", {}, error.message)));
  }
  if (mine !== generation) return; // a newer navigation won
  main.removeAttribute("aria-busy");
  fill(main, page);
  // Focus moves to the page's first field, or to the page itself, so keyboard users start there.
  const target = page.querySelector("[data-focus]");
  (target || main).focus({ preventScroll: !target });
  const heading = page.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · Connhub`;
}

window.addEventListener("connhub:unauthorized", () => {
  if (!state.session?.authEnabled) return;
  token.clear();
  state.session = null;
  state.notice = "Your session has ended (the token expired or is invalid). Sign in again.";
  showWho();
  renderPage(null);
});

async function boot() {
  try {
    signedIn(await api.session());
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      if (token.get()) state.notice = error.message;
      token.clear();
      renderPage(null);
    } else {
      fill(main, h("div", { class: "state error", role: "alert" }, h("h1", {}, "The console cannot start"), h("p", {}, error.message)));
    }
  }
}

boot();
