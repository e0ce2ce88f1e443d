// Hash routes (#/c/<id>/edit?fix=port): the server serves one page, and nothing secret is ever put
// in the location.

const routes = [];

export function route(pattern, view) {
  const names = [];
  const source = pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; });
  routes.push({ regex: new RegExp(`^${source}$`), names, view });
}

export function current() {
  const [path, search = ""] = (location.hash.slice(1) || "/").split("?");
  for (const { regex, names, view } of routes) {
    const match = regex.exec(path);
    if (match) {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
      return { view, params, query: new URLSearchParams(search) };
    }
  }
  return null;
}

export function go(path) {
  if (location.hash === `#${path}`) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = path;
}

let started = false;
export function start(render) {
  if (!started) window.addEventListener("hashchange", () => render(current()));
  started = true;
  render(current());
}
