"""Connection strings (URIs) in place of the separate fields, parsed with the standard library's
URL splitter and percent-decoding, so a password holding `@ : / ? # %` survives when encoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

# scheme -> (Engine value, default port)
SCHEMES: dict[str, tuple[str, int]] = {
    "postgresql": ("POSTGRESQL", 5432),
    "postgres": ("POSTGRESQL", 5432),
    "mysql": ("MYSQL", 3306),
    "mariadb": ("MYSQL", 3306),
    "mongodb": ("MONGODB", 27017),
    "mongodb+srv": ("MONGODB", 27017),
    "sqlserver": ("SQL_SERVER", 1433),
    "mssql": ("SQL_SERVER", 1433),
    "oracle": ("ORACLE", 1521),
}
MASK = "****"


@dataclass(frozen=True)
class ParsedUri:
    engine: str
    host: str
    port: int
    database: str | None
    user: str | None
    password: str | None = field(repr=False)
    options: dict[str, str]

    def fields(self) -> dict[str, Any]:
        """The canonical connection fields this URI carries."""
        values = {
            "type": self.engine,
            "host": self.host,
            "port": self.port,
            "databaseName": self.database,
            "userName": self.user,
            "password": self.password,
        }
        return {name: value for name, value in values.items() if value is not None}


def parse(uri: str) -> ParsedUri:
    """Parse `uri`; ValueError says what is wrong without quoting the URI (it may hold a password)."""
    scheme, _, rest = uri.strip().partition("://")
    if not rest or scheme.lower() not in SCHEMES:
        raise ValueError("must be a URI starting with one of: " + ", ".join(f"{s}://" for s in SCHEMES))
    engine, default_port = SCHEMES[scheme.lower()]
    parts = urlsplit(uri.strip())
    netloc_host = parts.netloc.rpartition("@")[2]
    if "," in netloc_host:
        raise ValueError("must name one host (use mongodb+srv:// for a cluster)")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if not parts.hostname:
        raise ValueError("must name a host")
    options = dict(parse_qsl(parts.query))
    if scheme.lower() == "mongodb+srv":
        options["srv"] = "true"
    database = unquote(parts.path.lstrip("/")) or None
    return ParsedUri(
        engine=engine,
        host=parts.hostname,
        port=port,
        database=database,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        options=options,
    )


def build(scheme: str, host: str, port: int, user: str, password: str, database: str) -> str:
    """A URI whose parse gives back exactly these values (the inverse of `parse`)."""
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"{scheme}://{credentials}@{host}:{port}/{quote(database, safe='')}"


def masked(uri: str) -> str:
    """`uri` with its password replaced by ****, safe to show."""
    parts = urlsplit(uri.strip())
    if parts.password is None:
        return uri.strip()
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostport}"))
