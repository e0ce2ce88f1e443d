// What the console remembers while the tab is open (memory only).

export const WRITE_SCOPE = "connections:write";

export const state = {
  session: null, // {tenant, scopes, authEnabled}
  get canWrite() { return Boolean(this.session?.scopes.includes(WRITE_SCOPE)); },
  lastTests: new Map(), // connection id -> "success" | "failure": the status dot of the list
  notice: null, // one message to show on the next page (e.g. "Deleted ...")
};
