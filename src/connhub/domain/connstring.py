"""Connection strings (URIs) in place of the separate fields.

`scheme://user:password@host:port/database?option=value` for every engine, with percent-decoding
of the user, password and database, so a password holding `@ : / ? # %` or any Unicode character
survives when it is percent-encoded (as `build` does). The authority is split by hand rather than
by `urllib`: `urlsplit(...).hostname` lower-cases the host and drops IPv6 brackets, and a password
must never reach an error message, which `urllib`'s port errors could quote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from connhub.domain.engines import Engine

# scheme -> (Engine value, default port)
SCHEMES: dict[str, tuple[str, int]] = {
    scheme: (engine.value, engine.facts.default_port) for engine in Engine for scheme in engine.facts.schemes
}
MASK = "****"
# Query parameters that carry the password: taken as the password, never kept as a driver option.
SECRET_PARAMETERS = frozenset({"password", "pwd", "pass"})
# Query parameters naming the database (go-mssqldb's `sqlserver://host?database=db` form).
DATABASE_PARAMETERS = frozenset({"database", "databasename", "dbname"})
_ENCODING_HINT = "percent-encode @ : / ? # % in the user name and password"
# What names a secret in an option key, once lower-cased and stripped of `-`, `_`, `.` and spaces:
# libpq's sslpassword, MongoDB's tlsCertificateKeyFilePassword and authMechanismProperties (AWS
# session tokens), Oracle's wallet_password, MySQL's ssl-key-password, tokens and secrets of any
# driver.
_SECRET_KEY_PARTS = ("password", "passwd", "passphrase", "pwd", "secret", "token", "credential")
_SECRET_KEYS = frozenset({"pass", "authmechanismproperties", "accesskey", "privatekey", "apikey"})
_KEY_NOISE = re.compile(r"[-_. ]")
SECRET_OPTION_HINT = (
    "options must not carry secrets: the password goes in the password field (or the connection string's user info)"
)


def is_secret_key(key: str) -> bool:
    """Whether an option (or query parameter) named `key`, as decoded, carries a secret (every
    one of SECRET_PARAMETERS does)."""
    folded = _KEY_NOISE.sub("", key).lower()
    return folded in _SECRET_KEYS or any(part in folded for part in _SECRET_KEY_PARTS)


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


@dataclass(frozen=True)
class _Parts:
    """A URI cut into its raw (still percent-encoded) pieces."""

    scheme: str
    userinfo: str | None
    hostport: str
    path: str
    query: str


def parse(uri: str) -> ParsedUri:
    """Parse `uri`; ValueError says what is wrong without quoting the URI (it may hold a password)."""
    parts = _split(uri)
    engine, default_port = SCHEMES[parts.scheme]
    host, port = _host_and_port(parts.hostport)
    if parts.scheme == "mongodb+srv" and port is not None:
        raise ValueError("must not name a port with mongodb+srv:// (the port comes from DNS)")
    user, password = _credentials(parts.userinfo)
    options = _query_options(parts.query)
    query_password = _pop_any(options, SECRET_PARAMETERS)
    query_database = _pop_any(options, DATABASE_PARAMETERS)
    if any(is_secret_key(key) for key in options):
        raise ValueError(f"has a query parameter that carries a secret; {SECRET_OPTION_HINT}")
    if parts.scheme == "mongodb+srv":
        options["srv"] = "true"
    return ParsedUri(
        engine=engine,
        host=host,
        port=port or default_port,
        database=_decoded(parts.path, "database") or query_database,
        user=user,
        password=password if password is not None else query_password,
        options=options,
    )


def build(
    scheme: str,
    host: str,
    port: int | None,
    user: str,
    password: str,
    database: str,
    options: Mapping[str, str] | None = None,
) -> str:
    """A URI whose `parse` gives back exactly these values (the inverse of `parse`)."""
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    address = f"[{host}]" if ":" in host else host
    if port is not None:
        address += f":{port}"
    query = f"?{urlencode(dict(options), quote_via=quote)}" if options else ""
    return f"{scheme}://{credentials}@{address}/{quote(database, safe='')}{query}"


def masked(uri: str) -> str:
    """`uri` with its password (in the user info or the query) replaced by ****, safe to show.

    Never raises. A string `parse` refuses is hidden after its scheme: where its password ends
    cannot be known. The query is masked by the keys `parse` reads (`_query_pairs`, decoded), so a
    password under an encoded key (`%70assword=`) is masked as it is used. The fragment, which
    `parse` ignores, is left out.
    """
    try:
        parse(uri)
        parts = _split(uri)
    except ValueError:
        scheme = uri.strip().partition("://")[0]
        return f"{scheme}://{MASK}" if scheme.lower().removeprefix("jdbc:") in SCHEMES else MASK
    prefix, _, rest = uri.strip().partition("://")
    tail = _cut_authority(rest)[1].partition("#")[0]
    path, question_mark, _ = tail.partition("?")
    userinfo = ""
    if parts.userinfo is not None:
        user, colon, _ = parts.userinfo.partition(":")
        userinfo = f"{user}:{MASK}@" if colon else f"{user}@"
    pieces = [_masked_pair(raw, key) for raw, key, _ in _query_pairs(parts.query)]
    return f"{prefix}://{userinfo}{parts.hostport}{path}{question_mark}{'&'.join(pieces)}"


def _masked_pair(raw: str, key: str) -> str:
    return f"{raw.partition('=')[0]}={MASK}" if is_secret_key(key) else raw


# -- parsing helpers ----------------------------------------------------------------------------


def _split(uri: str) -> _Parts:
    text = uri.strip()
    if text.lower().startswith("jdbc:"):  # Java tools copy their URLs with this prefix
        text = text[5:]
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in SCHEMES:
        raise ValueError("must be a URI starting with one of: " + ", ".join(f"{s}://" for s in SCHEMES))
    authority, tail = _cut_authority(rest)
    tail, _, _fragment = tail.partition("#")
    path, _, query = tail.partition("?")
    userinfo, at, hostport = authority.rpartition("@")
    return _Parts(scheme, userinfo if at else None, hostport, path.removeprefix("/"), query)


def _cut_authority(rest: str) -> tuple[str, str]:
    """`user:password@host:port` and what follows it (path, query, fragment).

    The authority ends at the first `/`, `?` or `#`: those must be percent-encoded in a password,
    while an unencoded `@` still works (the last `@` ends the user info), a common mistake.
    """
    cut = min((p for p in (rest.find(c) for c in "/?#") if p >= 0), default=len(rest))
    return rest[:cut], rest[cut:]


def _host_and_port(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or not host:
            raise ValueError("has an unclosed IPv6 address bracket")
        if rest and not rest.startswith(":"):
            raise ValueError("has text after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
        if "," in hostport:
            raise ValueError("must name one host (use mongodb+srv:// for a cluster)")
    if not host:
        raise ValueError("must name a host")
    return unquote(host), _port(port_text)


def _port(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"has an invalid port (a number from 1 to 65535; {_ENCODING_HINT})")
    return int(text)


def _credentials(userinfo: str | None) -> tuple[str | None, str | None]:
    if userinfo is None:
        return None, None
    user, colon, password = userinfo.partition(":")
    return _decoded(user, "user name"), _decoded(password, "password") if colon else None


def _decoded(text: str, what: str) -> str | None:
    if not text:
        return None
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"has a {what} whose percent-encoding is not UTF-8") from None


def _query_pairs(query: str) -> list[tuple[str, str, str]]:
    """Each `key=value` of the query as (the raw text, the decoded key, the decoded value): the one
    reading of the query that both `parse` and `masked` use."""
    pairs: list[tuple[str, str, str]] = []
    for raw in query.split("&"):
        if not raw:
            continue
        try:
            decoded = parse_qsl(raw, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise ValueError("has a query string that is not valid percent-encoded UTF-8") from None
        pairs.extend((raw, key, value) for key, value in decoded)
    return pairs


def _query_options(query: str) -> dict[str, str]:
    return {key: value for _, key, value in _query_pairs(query)}


def _pop_any(options: dict[str, str], names: frozenset[str]) -> str | None:
    found = None
    for key in [key for key in options if key.lower() in names]:
        found = options.pop(key) or found
    return found
