"""`connhub conn list|show|add|test|schema|rm`: a command-line client of a Connhub server.

It talks the Reporter dialect (`/v1/management/connections`) to CONNHUB_URL with CONNHUB_TOKEN as
a bearer token (`--url`, `--token` override). Tables on a terminal, `--json` for scripts (the
server's answer as it came). Passwords come from a prompt or `--password-stdin`, never a flag: a
flag lands in the shell's history and in `ps`. Exit codes: see connhub.cli.EXIT_CODES.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from connhub.config import ConfigError

DEFAULT_URL = "http://127.0.0.1:8080"
BASE = "/v1/management/connections"
TIMEOUT_S = 30.0  # a live test may take CONNHUB_PROBE_TIMEOUT_S (10 s by default) on the server
ENGINES = ("POSTGRESQL", "MYSQL", "MONGODB", "SQL_SERVER", "ORACLE")
LIST_COLUMNS = (("ID", "id"), ("NAME", "configName"), ("TYPE", "type"), ("HOST", "host"), ("PORT", "port"),
                ("DATABASE", "databaseName"), ("PRODUCT", "productName"))  # fmt: skip

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class ClientFailure(Exception):
    """The answer a command ends with: a message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_client_commands(commands: Any) -> None:
    from connhub.cli import EXIT_CODES

    conn = commands.add_parser(
        "conn",
        help="manage connections on a Connhub server (CONNHUB_URL, CONNHUB_TOKEN)",
        description=f"A client of a Connhub server: CONNHUB_URL [{DEFAULT_URL}], token CONNHUB_TOKEN.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conn.set_defaults(handler=run)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the server [CONNHUB_URL, {DEFAULT_URL}]")
    common.add_argument("--token", help="a bearer token (JWT) [CONNHUB_TOKEN]")
    common.add_argument("--json", action="store_true", help="print the server's JSON answer, for scripts")
    actions = conn.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", parents=[common], help="list connections")
    listing.add_argument("--type", choices=ENGINES, help="only this engine")
    listing.add_argument("--name", help="configName contains this")
    listing.add_argument("--product", help="only this product (X-Product-Name)")
    listing.add_argument("--limit", type=int, default=50, help="per page [50]")
    listing.add_argument("--all", action="store_true", help="every page, not only the first")
    listing.set_defaults(call=list_connections)

    for name, call, help_text in (
        ("show", show, "show one connection"),
        ("test", test, "test a connection live (exit 1 when the test fails)"),
        ("schema", schema, "the tables and columns in a connection's database"),
        ("rm", remove, "delete a connection (its secrets are wiped)"),
    ):
        action = actions.add_parser(name, parents=[common], help=help_text)
        action.add_argument("connection", help="its id, or its configName")
        action.set_defaults(call=call)
    actions.choices["schema"].add_argument("--refresh", action="store_true", help="bypass the server's cache")

    add = actions.add_parser("add", parents=[common], help="create a connection (password from a prompt)")
    add.add_argument("--name", required=True, help="configName, 3-100 characters, unique")
    add.add_argument("--type", required=True, choices=ENGINES)
    add.add_argument("--host", required=True)
    add.add_argument("--port", required=True, type=int)
    add.add_argument("--database", required=True, help="databaseName")
    add.add_argument("--user", required=True, help="userName")
    add.add_argument("--product", required=True, help="the product it belongs to (X-Product-Name)")
    add.add_argument("--schema", dest="db_schema", help="the schema to read (e.g. public)")
    add.add_argument("--ssl-mode", choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full"))
    add.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--test-first", action="store_true", help="store it only if a live test succeeds")
    add.set_defaults(call=add_connection)


def run(args: argparse.Namespace) -> int:
    call: Callable[[Api, argparse.Namespace], int] = args.call
    try:
        with Api.from_environment(args.url, args.token) as api:
            return call(api, args)
    except ClientFailure as failure:
        print(f"connhub: {failure}", file=sys.stderr)
        return failure.code


class Api:
    """The server's Reporter dialect over HTTP; every failure becomes a ClientFailure."""

    def __init__(self, url: str, token: str | None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"CONNHUB_URL (or --url) must start with http:// or https://, not {url[:40]!r}")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_S)

    @classmethod
    def from_environment(cls, url: str | None, token: str | None) -> Api:
        return cls(url or os.environ.get("CONNHUB_URL") or DEFAULT_URL, token or os.environ.get("CONNHUB_TOKEN"))

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            answer = self.http.request(method, path, **options)
        except httpx.TransportError as error:
            raise ClientFailure(f"cannot reach the server at {self.url}: {error or type(error).__name__}",
                                EXIT_UNREACHABLE) from None  # fmt: skip
        if answer.is_error and not _is_report(answer):
            raise _failure(answer)
        return answer

    def connection_id(self, given: str) -> str:
        """`given` if it is an id, else the id of the connection with that configName."""
        try:
            return str(uuid.UUID(given))
        except ValueError:
            pass
        page = self.call("GET", BASE, params={"configName": given, "limit": 1000}).json()
        found = [item for item in page["items"] if item["configName"].casefold() == given.casefold()]
        if not found:
            raise ClientFailure(f"no connection named {given!r}", EXIT_FAILED)
        return str(found[0]["id"])


def _is_report(answer: httpx.Response) -> bool:
    """A 422 whose body carries a test report: the request was fine, the database was not."""
    return answer.status_code == 422 and "report" in _json_or_empty(answer)


def _failure(answer: httpx.Response) -> ClientFailure:
    body = _json_or_empty(answer)
    message = body.get("message") or answer.reason_phrase or "request failed"
    fields = body.get("fields") or {}
    detail = "; ".join(f"{name}: {problem}" for name, problem in fields.items()) or message
    where = ", ".join(part for part in (f"HTTP {answer.status_code}", body.get("code"), _request_id(answer)) if part)
    code = EXIT_USAGE if answer.status_code in (400, 401, 403, 405, 413, 415) else EXIT_FAILED
    if answer.status_code >= 500:
        code = EXIT_UNREACHABLE
    return ClientFailure(f"{detail} ({where})", code)


def _request_id(answer: httpx.Response) -> str:
    found = answer.headers.get("x-request-id")
    return f"request {found}" if found else ""


def _json_or_empty(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- the commands ---------------------------------------------------------------------------------


def list_connections(api: Api, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    params.update({name: value for name, value in (("type", args.type), ("configName", args.name)) if value})
    headers = {"X-Product-Name": args.product} if args.product else {}
    items: list[dict[str, Any]] = []
    while True:
        page = api.call("GET", BASE, params=params, headers=headers).json()
        items += page["items"]
        if not (args.all and page.get("nextCursor")):
            break
        params["cursor"] = page["nextCursor"]
    if args.json:
        _print_json(items if args.all else page)
    else:
        print(table(LIST_COLUMNS, items))
        shown = len(items)
        if shown < page["total"] and not args.all:
            print(f"({shown} of {page['total']}; --all for every page)")
    return 0


def show(api: Api, args: argparse.Namespace) -> int:
    found = api.call("GET", f"{BASE}/{api.connection_id(args.connection)}").json()
    if args.json:
        _print_json(found)
        return 0
    rows = [(name, _cell(value)) for name, value in found.items() if name not in ("ssl", "metadata")]
    if found.get("ssl"):
        rows.append(("ssl", ", ".join(f"{k}={_cell(v)}" for k, v in found["ssl"].items())))
    rows += [(f"metadata.{key}", value) for key, value in (found.get("metadata") or {}).items()]
    print(_key_values(rows))
    return 0


def add_connection(api: Api, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "configName": args.name,
        "type": args.type,
        "host": args.host,
        "port": args.port,
        "databaseName": args.database,
        "userName": args.user,
        "password": _password(args.password_stdin),
    }
    if args.db_schema:
        body["schema"] = args.db_schema
    if args.ssl_mode:
        body["ssl"] = {"mode": args.ssl_mode}
    if args.metadata:
        body["metadata"] = dict(_key_value(item) for item in args.metadata)
    params = {"validate": "true"} if args.test_first else {}
    answer = api.call("POST", BASE, json=body, params=params, headers={"X-Product-Name": args.product})
    if _is_report(answer):  # --test-first and the test failed: nothing was stored
        return _print_report(answer.json()["report"], args.json, prefix="not stored: ")
    created = answer.json()
    if args.json:
        _print_json(created)
    else:
        print(f"created {created['configName']} ({created['id']})")
    return 0


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        raise ClientFailure("no password: use --password-stdin, or run on a terminal to be asked", EXIT_USAGE)
    if not password:
        raise ClientFailure("the password is empty", EXIT_USAGE)
    return password


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ClientFailure(f"--metadata takes KEY=VALUE, not {item!r}", EXIT_USAGE)
    return key, value


def test(api: Api, args: argparse.Namespace) -> int:
    report = api.call("POST", f"{BASE}/{api.connection_id(args.connection)}/test").json()
    return _print_report(report, args.json)


def _print_report(report: dict[str, Any], as_json: bool, prefix: str = "") -> int:
    ok = report.get("status") == "success"
    if as_json:
        _print_json(report)
        return 0 if ok else EXIT_FAILED
    rows = [("status", f"{prefix}{report.get('status')}"), ("message", report.get("message")),
            ("latency", f"{report.get('latencyMs')} ms"), ("server", report.get("serverVersion"))]  # fmt: skip
    tls = report.get("tls") or {}
    if tls.get("enabled"):
        rows.append(("tls", f"{tls.get('version')} {tls.get('cipher')}"))
    phases = report.get("phases") or {}
    rows += [(name.removesuffix("Ms"), f"{value} ms") for name, value in phases.items() if value is not None]
    error = report.get("error")
    if error:
        rows += [("error", error.get("category")), ("fix", error.get("field"))]
    print(_key_values([(name, _cell(value)) for name, value in rows if value is not None]))
    return 0 if ok else EXIT_FAILED


def schema(api: Api, args: argparse.Namespace) -> int:
    params = {"refresh": "true"} if args.refresh else {}
    answer = api.call("GET", f"{BASE}/{api.connection_id(args.connection)}/schema", params=params)
    if _is_report(answer):
        body = answer.json()
        return _print_report(body["report"], args.json, prefix="unreachable: ")
    found = answer.json()
    if args.json:
        _print_json(found)
        return 0
    rows = [
        {"table": table["name"], "column": column["name"], "type": column["type"],
         "null": "yes" if column["nullable"] else "no", "key": "PK" if column["primaryKey"] else ""}
        for table in found["tables"]
        for column in table["columns"]
    ]  # fmt: skip
    columns = (("TABLE", "table"), ("COLUMN", "column"), ("TYPE", "type"), ("NULL", "null"), ("KEY", "key"))
    print(table(columns, rows) if rows else f"no tables in {found['databaseName']}")
    return 0


def remove(api: Api, args: argparse.Namespace) -> int:
    connection_id = api.connection_id(args.connection)
    api.call("DELETE", f"{BASE}/{connection_id}")
    if args.json:
        _print_json({"id": connection_id, "removed": True})
    else:
        print(f"removed {connection_id}")
    return 0


# -- output ---------------------------------------------------------------------------------------


def table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> str:
    """Rows under aligned column heads, as `docker ps` or `gh pr list` print them."""
    cells = [[heading for heading, _ in columns]]
    cells += [[_cell(row.get(key)) for _, key in columns] for row in rows]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines)


def _key_values(rows: Sequence[tuple[str, str]]) -> str:
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
