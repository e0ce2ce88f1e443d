// What the form asks for each engine, and the connection-string paste that fills it.

export const ENGINES = {
  POSTGRESQL: { label: "PostgreSQL", port: 5432, database: "Database", schema: "public", schemes: ["postgresql", "postgres"] },
  MYSQL: { label: "MySQL / MariaDB", port: 3306, database: "Database", schema: null, schemes: ["mysql", "mariadb"] },
  MONGODB: { label: "MongoDB", port: 27017, database: "Database", schema: null, schemes: ["mongodb"] },
  SQL_SERVER: { label: "SQL Server", port: 1433, database: "Database", schema: "dbo", schemes: ["sqlserver", "mssql"] },
  ORACLE: { label: "Oracle", port: 1521, database: "Service name", schema: "owner (optional)", schemes: ["oracle"] },
};

export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

const PASSWORD_PARAMS = ["password", "pwd", "pass"];
const DATABASE_PARAMS = ["database", "databasename", "dbname"];

/**
 * The form fields a connection string carries: scheme://user:password@host:port/database?options.
 * The server reads the same strings by the same rules (README "Connection strings"); this only fills
 * the form, so the user sees and can correct what will be saved.
 */
export function parseConnectionString(text) {
  const raw = text.trim().replace(/^jdbc:/i, "");
  const scheme = /^([a-z+]+):\/\//i.exec(raw);
  if (!scheme) throw new Error("It must start with a scheme such as postgresql://");
  const name = scheme[1].toLowerCase();
  const type = Object.keys(ENGINES).find((engine) => ENGINES[engine].schemes.includes(name));
  if (!type) throw new Error(`Unknown scheme ${name}://`);
  let rest = raw.slice(scheme[0].length);
  const fields = { type };
  const hashAt = rest.indexOf("#");
  if (hashAt >= 0) rest = rest.slice(0, hashAt);
  const [location, search = ""] = splitOnce(rest, "?");
  const [authority, path = ""] = splitOnce(location, "/");
  const userAt = authority.lastIndexOf("@"); // an unencoded @ in the password still works
  const hostPort = userAt >= 0 ? authority.slice(userAt + 1) : authority;
  if (userAt >= 0) {
    const [user, password] = splitOnce(authority.slice(0, userAt), ":");
    if (user) fields.userName = decode(user);
    if (password !== undefined) fields.password = decode(password);
  }
  const host = /^(\[[^\]]+\]|[^:]*)(?::(\d*))?$/.exec(hostPort);
  if (!host || !host[1]) throw new Error("It has no host");
  fields.host = host[1].startsWith("[") ? host[1].slice(1, -1) : host[1];
  if (host[2]) fields.port = Number(host[2]);
  if (path) fields.databaseName = decode(path);
  const ignored = [];
  for (const [key, value] of new URLSearchParams(search)) {
    const lower = key.toLowerCase();
    if (PASSWORD_PARAMS.includes(lower)) fields.password = value;
    else if (DATABASE_PARAMS.includes(lower)) fields.databaseName = value;
    else if (lower === "sslmode") fields.sslMode = value;
    else ignored.push(key);
  }
  return { fields, ignored };
}

function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + 1)];
}

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
