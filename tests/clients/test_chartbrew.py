"""Chartbrew's web client (chartbrew/chartbrew v5.3.0, client/src) against Connhub, flow by flow.

`WebClient` replays the thunks of `client/src/slices/connection.js` request by request (URL,
method, headers, body) and reads the answer as each thunk does: some throw when the status is not
ok, some hand `response.json()` on whatever the status, the test thunks hand the raw response to
the form, which colours the result by `status < 400` and shows the body. The bodies are what the
connection forms build (`client/src/sources/{postgres,mysql,mongodb}/*-connection-form.jsx`; the
timescaledb, supabasedb and rdsPostgres forms are the postgres form, rdsMysql the mysql form) in
`_onCreateConnection`: the form state, `connectionString: ""` in form mode, the SSH secrets that
are empty stripped (`sources/shared/sql/sshSecrets.js`), and `team_id` added by
`containers/Connections/ConnectionWizard.jsx` `_onAddNewConnection`. On edit the form state is
the whole GET answer, so a save PUTs it back.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pymysql
import pytest

from connhub.domain import connstring
from tests.clients.conftest import PgSchemas
from tests.support.mongo_wire import MongoWireServer
from tests.support.pki import self_signed
from tests.support.servers import MARIADB_HOST, MARIADB_PORT, free_port, require_server

TEAM_ID = 1  # Chartbrew's team ids are integers
CA_PEM, _ = self_signed("replay-ca")
MONGO_PASSWORD = "mongo-Pw:@/?#%"
MARIADB_PASSWORD = "Maria-Pw:@/?#%25é"


@dataclass
class WebClient:
    """The thunks of client/src/slices/connection.js, one method each."""

    http: httpx.AsyncClient
    team_id: int | str = TEAM_ID

    @property
    def base(self) -> str:
        return f"/team/{self.team_id}/connections"

    def headers(self, json_body: bool = True) -> dict[str, str]:
        headers = {"Accept": "application/json", "Authorization": "Bearer replayed-token"}
        return {**headers, "Content-Type": "application/json"} if json_body else headers

    async def get_team_connections(self) -> list[dict[str, Any]]:
        """getTeamConnections: GET; throws when !response.ok; the array becomes state.data."""
        response = await self.http.get(self.base, headers=self.headers(False))
        assert response.is_success, response.text
        connections: list[dict[str, Any]] = response.json()
        return connections

    async def get_connection(self, connection_id: int) -> dict[str, Any]:
        """getConnection: GET /{id}; response.json() whatever the status (the wizard edits it)."""
        response = await self.http.get(f"{self.base}/{connection_id}", headers=self.headers(False))
        return _json(response)

    async def add_connection(self, connection: dict[str, Any]) -> dict[str, Any]:
        """addConnection (via ConnectionWizard _onAddNewConnection: `{...data, team_id}`): POST;
        response.json() whatever the status; the wizard navigates to `payload.id`."""
        body = json.dumps({**connection, "team_id": self.team_id})
        return _json(await self.http.post(self.base, content=body, headers=self.headers()))

    async def save_connection(self, connection: dict[str, Any]) -> dict[str, Any]:
        """saveConnection: PUT /{connection.id} with the whole form state; response.json()."""
        body = json.dumps(connection)
        return _json(await self.http.put(f"{self.base}/{connection['id']}", content=body, headers=self.headers()))

    async def add_files_to_connection(self, connection_id: int, files: dict[str, str | None]) -> httpx.Response:
        """addFilesToConnection: `formData.append(key, files[key])` for every key, so a slot the user
        left empty (null) goes as the text "null"; throws when !response.ok."""
        # A FormData body is always multipart; an appended null is a plain field holding "null".
        parts = {key: _file(key, value) if value else (None, b"null") for key, value in files.items()}
        return await self.http.post(f"{self.base}/{connection_id}/files", files=parts, headers=self.headers(False))

    async def test_request(self, connection: dict[str, Any]) -> httpx.Response:
        """testRequest: POST /{type}/test with the form state; the raw response goes to the form."""
        body = json.dumps(connection)
        return await self.http.post(f"{self.base}/{connection['type']}/test", content=body, headers=self.headers())

    async def test_request_with_files(self, connection: dict[str, Any], files: dict[str, str | None]) -> httpx.Response:
        """testRequestWithFiles: multipart `connection` (JSON text) plus only the files picked."""
        parts: dict[str, tuple[str | None, bytes] | tuple[str, bytes, str]] = {
            "connection": (None, json.dumps(connection).encode())
        }
        parts.update({key: _file(key, value) for key, value in files.items() if value})
        url = f"{self.base}/{connection['type']}/test/files"
        return await self.http.post(url, files=parts, headers=self.headers(False))

    async def remove_connection(self, connection_id: int, remove_datasets: bool) -> dict[str, Any]:
        """removeConnection: DELETE /{id}, `?removeDatasets=true` when asked; response.json()."""
        url = f"{self.base}/{connection_id}" + ("?removeDatasets=true" if remove_datasets else "")
        return _json(await self.http.delete(url, headers=self.headers(False)))

    async def duplicate_connection(self, connection_id: int, name: str) -> dict[str, Any]:
        """duplicateConnection: POST /{id}/duplicate `{name}`; throws when !response.ok."""
        body = json.dumps({"name": name})
        response = await self.http.post(f"{self.base}/{connection_id}/duplicate", content=body, headers=self.headers())
        assert response.is_success, response.text
        return _json(response)

    async def update_mongo_schema(self, connection_id: int) -> dict[str, Any]:
        """updateMongoSchema: POST /{id}/update-schema, no body; throws when !response.ok; the
        answer replaces the connection of that id in state.data."""
        response = await self.http.post(f"{self.base}/{connection_id}/update-schema", headers=self.headers(False))
        assert response.is_success, response.text
        return _json(response)

    async def test_saved(self, connection_id: int) -> httpx.Response:
        """server/api/ConnectionRoute.js GET /{id}/test (the API's saved-connection test)."""
        return await self.http.get(f"{self.base}/{connection_id}/test", headers=self.headers(False))


def _file(slot: str, pem: str) -> tuple[str, bytes, str]:
    """A picked file as the browser sends it: its name, its bytes, its type."""
    return (f"{slot}.pem", pem.encode(), "application/x-x509-ca-cert")


def _json(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def form_result(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """What the form shows of a test (`_onTestRequest`): green when status < 400, and the body."""
    return ("success" if response.status_code < 400 else "danger"), response.json()


# -- the forms' bodies ------------------------------------------------------------------------------


def strip_empty_ssh_secrets(connection: dict[str, Any]) -> dict[str, Any]:
    """sources/shared/sql/sshSecrets.js stripEmptySshSecrets."""
    return {
        key: value
        for key, value in connection.items()
        if key not in ("sshPassword", "sshPrivateKey", "sshPassphrase") or value not in (None, "")
    }


def sql_form(kind: str, sub_type: str, name: str, *, string: str | None = None, **typed: Any) -> dict[str, Any]:
    """postgres-/mysql-connection-form.jsx state after typing, as `_onCreateConnection` sends it.

    Form mode (no `string`): the typed fields and `connectionString: ""`; string mode: the string.
    Inputs are text, so the port is a string.
    """
    state: dict[str, Any] = {"type": kind, "subType": sub_type, "name": name}
    if string is None:
        state.update(typed)
        state["connectionString"] = ""
    else:
        state.update({"connectionString": string, **typed})
    return strip_empty_ssh_secrets(state)


def postgres_form(name: str, sub_type: str = "postgres", **typed: Any) -> dict[str, Any]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    fields = {"host": "127.0.0.1", "port": "5432", "dbName": "test", "username": "postgres", "password": "trusted"}
    return sql_form("postgres", sub_type, name, **{**fields, **typed})


def mongodb_form(name: str, port: int, options: list[tuple[str, str]], **typed: Any) -> dict[str, Any]:
    """mongodb-connection-form.jsx: optionsArray rows `{id, key, value}`, turned into `options`
    (a list of single-key objects) by `_onCreateConnection`; srv false; connectionString ""."""
    rows = [{"id": str(uuid.uuid4()), "key": key, "value": value} for key, value in options]
    state: dict[str, Any] = {
        "type": "mongodb", "subType": "mongodb", "optionsArray": rows, "srv": False, "name": name,
        "host": "127.0.0.1", "port": str(port), "dbName": "shop", "username": "app", "password": MONGO_PASSWORD,
        **typed,
    }  # fmt: skip
    state["connectionString"] = ""
    state["options"] = [{row["key"]: row["value"]} for row in rows if row["key"] and row["value"]]
    return state


def mongodb_edit_state(read: dict[str, Any]) -> dict[str, Any]:
    """mongodb-connection-form.jsx `_init` on edit: optionsArray rebuilt from `options`, each
    entry's `Object.keys(o)[0]` and `Object.values(o)[0]`."""
    state = dict(read)
    state["optionsArray"] = [
        {"id": str(uuid.uuid4()), "key": next(iter(entry)), "value": next(iter(entry.values()))}
        for entry in read["options"] or []
    ]
    return state


def visual_sql_columns(schema: dict[str, Any], table: str) -> list[tuple[str, str]]:
    """containers/AddChart/components/VisualSQL.jsx: `Object.keys(schema.description[table])` and
    `schema.description[table][column].type`; sql-builder lists `schema.tables`."""
    assert table in schema["tables"]
    return [(column, schema["description"][table][column]["type"]) for column in schema["description"][table]]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def web(sqlite_client: httpx.AsyncClient) -> WebClient:
    return WebClient(sqlite_client)


@pytest.fixture
async def mongo() -> AsyncIterator[MongoWireServer]:
    orders: list[dict[str, Any]] = [{"_id": 1, "total": 5, "customer": "ada"}]
    databases = {"shop": {"orders": orders, "customers": [{"_id": 1}]}}
    async with MongoWireServer(databases, {"app": MONGO_PASSWORD}) as server:
        yield server


@pytest.fixture
def mariadb_user() -> Iterator[str]:
    """A MariaDB user with a real password (so a lost secret shows as a failed test); dropped after."""
    require_server("MariaDB", MARIADB_HOST, MARIADB_PORT)
    user = f"replay_{secrets.token_hex(4)}"
    hosts = ("%", "localhost", "127.0.0.1")
    root = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="", charset="utf8mb4")
    try:
        with root.cursor() as cursor:
            for host in hosts:
                cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, MARIADB_PASSWORD))
                cursor.execute("GRANT ALL ON test.* TO %s@%s", (user, host))
        yield user
    finally:
        with root.cursor() as cursor:
            for host in hosts:
                cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))
        root.close()


def mysql_form(name: str, user: str, sub_type: str = "mysql", **typed: Any) -> dict[str, Any]:
    fields = {"host": MARIADB_HOST, "port": str(MARIADB_PORT), "dbName": "test", "username": user,
              "password": MARIADB_PASSWORD}  # fmt: skip
    return sql_form("mysql", sub_type, name, **{**fields, **typed})


# -- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sub_type", ["postgres", "timescaledb", "supabasedb", "rdsPostgres"])
async def test_create_postgres_family_in_form_mode(web: WebClient, sub_type: str) -> None:
    """postgres-connection-form.jsx _onCreateConnection (form mode, SSL and SSH switched on and off
    again: `ssl: false`, `useSsh: false`, `connectionString: ""`) -> slices addConnection."""
    body = postgres_form("Warehouse", sub_type, ssl=False, sslMode="require", useSsh=False, sshHost="", sshPort="",
                         sshUsername="", sshPassword="")  # fmt: skip
    created = await web.add_connection(body)
    assert isinstance(created["id"], int) and (created["type"], created["subType"]) == ("postgres", sub_type)
    assert created["password"] is None and created["hasPassword"] is True


@pytest.mark.parametrize("sub_type", ["mysql", "rdsMysql"])
async def test_create_mysql_family_in_string_mode(web: WebClient, mariadb_user: str, sub_type: str) -> None:
    """mysql-connection-form.jsx _onCreateConnection (string mode) -> addConnection; the answer
    shows the string with its password masked."""
    uri = connstring.build("mysql", MARIADB_HOST, MARIADB_PORT, mariadb_user, MARIADB_PASSWORD, "test")
    created = await web.add_connection(sql_form("mysql", sub_type, "Shop", string=uri))
    assert created["subType"] == sub_type and "****" in created["connectionString"]
    assert MARIADB_PASSWORD not in json.dumps(created)


async def test_create_mongodb_with_options(web: WebClient, mongo: MongoWireServer) -> None:
    """mongodb-connection-form.jsx _onCreateConnection: optionsArray, options as a list of
    single-key objects, srv false -> addConnection; `options` answered as Chartbrew stores it."""
    created = await web.add_connection(mongodb_form("Events", mongo.port, [("authSource", "admin"), ("", "")]))
    assert created["options"] == [{"authSource": "admin"}] and created["srv"] is False


async def test_create_with_an_ssh_tunnel(web: WebClient) -> None:
    """postgres-connection-form.jsx with the SSH switch on (sshHost, sshPort, sshUsername, sshPassword)
    -> addConnection: 200, and the answer the form reads back (useSsh, the has* flags, no secret)."""
    body = postgres_form("Tunnelled", useSsh=True, sshHost="bastion.example.com", sshPort="22",
                         sshUsername="jump", sshPassword="ssh-secret")  # fmt: skip
    response = await web.http.post(web.base, json={**body, "team_id": TEAM_ID})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["useSsh"] is True and answer["sshHost"] == "bastion.example.com"
    assert answer["hasSshPassword"] is True and answer["hasSshPrivateKey"] is False
    assert "ssh-secret" not in response.text


async def test_create_then_upload_the_form_files(web: WebClient) -> None:
    """ConnectionWizard _onAddNewConnection -> addFilesToConnection with the form's `sslCerts`
    ({sslCa, sslCert, sslKey}; unpicked ones are null, sent as the text "null"): a CA alone uploads;
    nothing picked is Chartbrew's own 400 ("no files"), which the wizard ignores."""
    created = await web.add_connection(postgres_form("Secure", ssl=True, sslMode="require"))
    nothing = await web.add_files_to_connection(created["id"], {"sslCa": None, "sslCert": None, "sslKey": None})
    assert nothing.status_code == 400 and "no files were uploaded" in nothing.json()["fields"]["body"]
    uploaded = await web.add_files_to_connection(created["id"], {"sslCa": CA_PEM, "sslCert": None, "sslKey": None})
    assert uploaded.status_code == 200, uploaded.text
    assert (uploaded.json()["hasSslCa"], uploaded.json()["hasSslCert"]) == (True, False)


# -- read -----------------------------------------------------------------------------------------


async def test_list(web: WebClient) -> None:
    """slices getTeamConnections -> containers/UserDashboard/ConnectionList.jsx reads id, name, type,
    subType of each."""
    for name in ("First", "Second"):
        await web.add_connection(postgres_form(name))
    listed = await web.get_team_connections()
    assert [(c["name"], c["type"], c["subType"]) for c in listed] == [("Second", "postgres", "postgres"),
                                                                      ("First", "postgres", "postgres")]  # fmt: skip
    assert all(isinstance(c["id"], int) for c in listed)


async def test_get_opens_the_right_form_style(web: WebClient, mariadb_user: str) -> None:
    """slices getConnection -> the form's _init: `!connectionString && host` opens the form tab,
    otherwise the string tab."""
    by_form = await web.add_connection(postgres_form("By form"))
    uri = connstring.build("mysql", MARIADB_HOST, MARIADB_PORT, mariadb_user, MARIADB_PASSWORD, "test")
    by_string = await web.add_connection(sql_form("mysql", "mysql", "By string", string=uri))
    form_read = await web.get_connection(by_form["id"])
    string_read = await web.get_connection(by_string["id"])
    assert not form_read["connectionString"] and form_read["host"] == "127.0.0.1"
    assert string_read["connectionString"] and "****" in string_read["connectionString"]


# -- edit -----------------------------------------------------------------------------------------


async def test_edit_in_form_mode_echoes_the_read_and_keeps_the_password(web: WebClient, mariadb_user: str) -> None:
    """ConnectionWizard (connectionToEdit = getConnection payload) -> mysql-connection-form.jsx
    _onCreateConnection (form mode) -> saveConnection: the whole read with `password: null`,
    `hasPassword`, ids, timestamps, `schema`, `connectionString: ""` and the changed name. The
    stored password stays: the saved test still logs in."""
    created = await web.add_connection(mysql_form("Shop", mariadb_user, "rdsMysql"))
    assert (await web.test_saved(created["id"])).status_code == 200  # caches a schema: it is echoed too
    state = await web.get_connection(created["id"])
    assert state["schema"] is not None
    state.update(name="Shop (renamed)", connectionString="")
    saved = await web.save_connection(strip_empty_ssh_secrets(state))
    assert (saved["id"], saved["name"], saved["hasPassword"]) == (created["id"], "Shop (renamed)", True)
    colour, result = form_result(await web.test_saved(created["id"]))
    assert (colour, result["success"]) == ("success", True), result


async def test_edit_in_string_mode_echoes_the_masked_string(web: WebClient, mariadb_user: str) -> None:
    """The same save in string mode: the masked connection string goes back as read and never
    replaces the stored one (the saved test still logs in)."""
    uri = connstring.build("mysql", MARIADB_HOST, MARIADB_PORT, mariadb_user, MARIADB_PASSWORD, "test")
    created = await web.add_connection(sql_form("mysql", "mysql", "Shop", string=uri))
    state = await web.get_connection(created["id"])
    state["sslMode"] = "prefer"
    saved = await web.save_connection(state)
    assert saved["connectionString"] == created["connectionString"]
    colour, result = form_result(await web.test_saved(created["id"]))
    assert (colour, result["success"]) == ("success", True), result


async def test_edit_mongodb_rebuilds_and_keeps_the_options(web: WebClient, mongo: MongoWireServer) -> None:
    """mongodb-connection-form.jsx _init (optionsArray from `options`) then _onCreateConnection ->
    saveConnection with optionsArray and options; the options survive, and so does the password
    (SCRAM against the in-process server)."""
    created = await web.add_connection(mongodb_form("Events", mongo.port, [("authSource", "admin")]))
    state = mongodb_edit_state(await web.get_connection(created["id"]))
    assert state["optionsArray"][0]["key"] == "authSource"
    state["options"] = [{row["key"]: row["value"]} for row in state["optionsArray"]]
    state.update(name="Events v2", connectionString="")
    saved = await web.save_connection(state)
    assert (saved["name"], saved["options"]) == ("Events v2", [{"authSource": "admin"}])
    colour, result = form_result(await web.test_saved(created["id"]))
    assert (colour, result["success"]) == ("success", True), result


# -- delete, duplicate ----------------------------------------------------------------------------


async def test_delete_with_its_datasets(web: WebClient) -> None:
    """slices removeConnection with removeDatasets (the dashboard's "delete datasets too") ->
    `{removed: true}`; the reducer drops it by id."""
    created = await web.add_connection(postgres_form("Doomed"))
    assert await web.remove_connection(created["id"], remove_datasets=True) == {"removed": True}
    other = await web.add_connection(postgres_form("Doomed too"))
    assert await web.remove_connection(other["id"], remove_datasets=False) == {"removed": True}
    assert await web.get_team_connections() == []


async def test_duplicate(web: WebClient, mariadb_user: str) -> None:
    """slices duplicateConnection `{name}` -> the copy is prepended to state.data; it works as the
    original (its secrets were copied)."""
    created = await web.add_connection(mysql_form("Shop", mariadb_user))
    copy = await web.duplicate_connection(created["id"], "Shop copy")
    assert copy["id"] != created["id"] and copy["name"] == "Shop copy"
    assert form_result(await web.test_saved(copy["id"]))[0] == "success"


# -- tests ----------------------------------------------------------------------------------------


async def test_test_unsaved(web: WebClient) -> None:
    """postgres-connection-form.jsx _onCreateConnection(test=true) -> slices testRequest: 200, the
    body `{success: true, schema: {tables, description}, ...report}`."""
    colour, result = form_result(await web.test_request(postgres_form("Unsaved", ssl=False)))
    assert (colour, result["success"], result["status"]) == ("success", True, "success"), result
    assert set(result["schema"]) == {"tables", "description"}
    assert set(result["schema"]["tables"]) == set(result["schema"]["description"])


async def test_test_unsaved_failure(web: WebClient) -> None:
    """testRequest of a database that refuses: Chartbrew answers 400, so the form shows it red, with
    the typed report in the body."""
    colour, result = form_result(await web.test_request(postgres_form("Nowhere", port=str(free_port()))))
    assert (colour, result["success"]) == ("danger", False)
    assert (result["error"]["category"], result["error"]["field"]) == ("PORT_CLOSED", "port")


async def test_test_unsaved_with_files(web: WebClient) -> None:
    """postgres-connection-form.jsx with SSL on and a CA picked -> testRequestWithFiles (multipart
    `connection` + `sslCa`): `prefer` with the CA connects; `verify-ca` with a CA that did not sign the
    server's certificate (or a server without TLS) fails, red, as TLS_FAILED."""
    files: dict[str, str | None] = {"sslCa": CA_PEM, "sslCert": None, "sslKey": None}
    preferred = await web.test_request_with_files(postgres_form("Files", ssl=True, sslMode="prefer"), files)
    assert form_result(preferred)[0] == "success", preferred.text
    verified = await web.test_request_with_files(postgres_form("Files", ssl=True, sslMode="verify-ca"), files)
    colour, result = form_result(verified)
    assert (colour, result["error"]["category"]) == ("danger", "TLS_FAILED"), result


async def test_test_saved_and_the_schema_it_caches(sqlite_client: httpx.AsyncClient, pg_schemas: PgSchemas) -> None:
    """ConnectionRoute.js GET /{id}/test: 200 `{success: true, schema, ...}`; then the connection's
    `schema` (what sql-builder.jsx passes to VisualSQL) is in Chartbrew's shape, columns in order.
    The connection is made by the Reporter dialect, which can name a schema (team `default` is its
    tenant)."""
    web = WebClient(sqlite_client, "default")
    reporter_body = {"configName": "Scoped", "type": "POSTGRESQL", "host": "127.0.0.1", "port": 5432,
                     "databaseName": "test", "userName": "postgres", "password": "trusted",
                     "schema": pg_schemas.own}  # fmt: skip
    made = await sqlite_client.post("/v1/management/connections", json=reporter_body, headers={"X-Product-Name": "x"})
    assert made.status_code == 201, made.text
    number = (await web.get_team_connections())[0]["id"]
    colour, result = form_result(await web.test_saved(number))
    assert (colour, result["success"]) == ("success", True), result
    assert visual_sql_columns(result["schema"], "orders") == [("total", "numeric(10,2)"), ("id", "bigint"),
                                                              ("note", "text")]  # fmt: skip
    assert result["schema"]["description"]["orders"]["id"] == {"type": "bigint", "allowNull": False,
                                                               "primaryKey": True}  # fmt: skip
    read = await web.get_connection(number)
    assert visual_sql_columns(read["schema"], "customers") == [("id", "integer"), ("email", "text")]


async def test_test_saved_with_uploaded_files(web: WebClient) -> None:
    """ConnectionWizard _onAddNewConnection: addConnection, then addFilesToConnection with the CA
    picked; the saved test (ConnectionRoute.js GET /{id}/test) uses it: `prefer` connects, and once
    the form switches to `verify-ca` (saveConnection) the CA, which did not sign the server's
    certificate (or a server without TLS), makes it a 400 TLS_FAILED."""
    created = await web.add_connection(postgres_form("Files", ssl=True, sslMode="prefer"))
    files: dict[str, str | None] = {"sslCa": CA_PEM, "sslCert": None, "sslKey": None}
    assert (await web.add_files_to_connection(created["id"], files)).status_code == 200
    assert form_result(await web.test_saved(created["id"]))[0] == "success"
    state = await web.get_connection(created["id"])
    await web.save_connection({**state, "sslMode": "verify-ca", "connectionString": ""})
    colour, result = form_result(await web.test_saved(created["id"]))
    assert (colour, result["error"]["category"]) == ("danger", "TLS_FAILED"), result


async def test_test_saved_failure(web: WebClient) -> None:
    """ConnectionRoute.js GET /{id}/test of a database that refuses: 400 with the typed report."""
    created = await web.add_connection(postgres_form("Nowhere", port=str(free_port())))
    colour, result = form_result(await web.test_saved(created["id"]))
    assert (colour, result["success"], result["error"]["category"]) == ("danger", False, "PORT_CLOSED")


async def test_update_schema(web: WebClient, mongo: MongoWireServer) -> None:
    """slices updateMongoSchema: POST /{id}/update-schema -> the connection with its re-read
    `schema`, which replaces it in state.data."""
    created = await web.add_connection(mongodb_form("Events", mongo.port, [("authSource", "admin")]))
    updated = await web.update_mongo_schema(created["id"])
    assert updated["id"] == created["id"]
    assert sorted(updated["schema"]["tables"]) == ["customers", "orders"]
    assert [column for column, _ in visual_sql_columns(updated["schema"], "orders")] == ["_id", "total", "customer"]
