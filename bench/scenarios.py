"""What the load generator asks of Connhub: the seed's create body and one call per measured request."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from functools import cache
from typing import Any

import aiohttp
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bench.load import Call

CONNECTIONS = "/v1/management/connections"
PRODUCT = "my-product"
DEEP_WALK_LIMIT = 1000


@cache
def ca_pem() -> str:
    """A self-signed CA certificate (RSA 2048), made once per run: the seed's `ssl.ca`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "connhub-bench-ca")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def create_body(config_name: str) -> dict[str, Any]:
    """The seed's create request, with an ssl CA PEM and metadata."""
    return {
        "configName": config_name,
        "type": "POSTGRESQL",
        "host": "db.example.com",
        "port": 5432,
        "databaseName": "mydatabase",
        "userName": "dbuser",
        "password": "secretpassword",
        "schema": "public",
        "ssl": {"mode": "require", "ca": ca_pem()},
        "metadata": {"environment": "production", "team": "data-engineering"},
    }


class Api:
    """Calls against one running server. Every call reads the whole answer before it returns."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url

    async def get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, bytes]:
        async with self.session.get(self.base + path, params=params) as response:
            return response.status, await response.read()

    async def send(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
        data = orjson.dumps(body)
        headers = {"Content-Type": "application/json", **headers}
        async with self.session.request(method, self.base + path, data=data, headers=headers) as response:
            return response.status, await response.read()


def expect(status: int, wanted: int) -> str | None:
    return None if status == wanted else f"HTTP {status}"


def health(api: Api) -> Call:
    async def call(_number: int) -> str | None:
        status, _ = await api.get("/health")
        return expect(status, 200)

    return call


def create(api: Api, tag: str, ids: list[str]) -> Call:
    """Create `bench-<tag>-<n>` (unique per request); remember each new id in `ids`."""
    headers = {"X-Product-Name": PRODUCT}

    async def call(number: int) -> str | None:
        status, raw = await api.send("POST", CONNECTIONS, create_body(f"bench-{tag}-{number:07d}"), headers)
        if status == 201:
            ids.append(orjson.loads(raw)["id"])
        return expect(status, 201)

    return call


def get_by_id(api: Api, ids: Sequence[str | int], collection: str = CONNECTIONS, seed: int = 7) -> Call:
    """GET `collection`/<one of ids>, the ids drawn at random (the same draw each run)."""
    chooser = random.Random(seed)

    async def call(_number: int) -> str | None:
        status, _ = await api.get(f"{collection}/{chooser.choice(ids)}")
        return expect(status, 200)

    return call


def list_page(api: Api, params: dict[str, str]) -> Call:
    async def call(_number: int) -> str | None:
        status, _ = await api.get(CONNECTIONS, params)
        return expect(status, 200)

    return call


def patch_metadata(api: Api, ids: Sequence[str]) -> Call:
    """Change the metadata of the connections in turn: request n patches ids[n % len(ids)]."""

    async def call(number: int) -> str | None:
        body = {"metadata": {"environment": "production", "team": "data-engineering", "rev": str(number)}}
        status, _ = await api.send("PATCH", f"{CONNECTIONS}/{ids[number % len(ids)]}", body, {})
        return expect(status, 200)

    return call


async def total_connections(api: Api) -> int:
    status, raw = await api.get(CONNECTIONS, {"limit": "1"})
    if status != 200:
        raise RuntimeError(f"listing connections answered HTTP {status}")
    return int(orjson.loads(raw)["total"])


async def deep_cursor(api: Api, depth: int) -> tuple[str, int]:
    """Walk the default order (newest first) through `cursor` pages until `depth` rows are behind.

    Returns the cursor to the page after those rows and how many rows it skips.
    """
    cursor = ""
    walked = 0
    while walked < max(depth, 1):
        params = {"limit": str(min(DEEP_WALK_LIMIT, max(depth, 1) - walked))}
        if cursor:
            params["cursor"] = cursor
        status, raw = await api.get(CONNECTIONS, params)
        page = orjson.loads(raw)
        if status != 200 or not page.get("nextCursor"):
            raise RuntimeError(f"the cursor walk stopped after {walked} rows (HTTP {status})")
        cursor, walked = page["nextCursor"], walked + len(page["items"])
    return cursor, walked


def patch_hot(api: Api, connection_id: str) -> Call:
    """Every client patches the same connection, without If-Match: last writer wins, never a 412."""

    async def call(number: int) -> str | None:
        body = {"metadata": {"environment": "production", "rev": str(number)}}
        status, _ = await api.send("PATCH", f"{CONNECTIONS}/{connection_id}", body, {})
        return expect(status, 200)

    return call


# -- the Chartbrew dialect: the same operations as its web client sends them ---------------------

CHARTBREW_TEAM = "default"  # with auth disabled, the Reporter dialect's tenant
CHARTBREW_LIST_TEAM = "bench-cb"  # a team of its own, for the whole-team list


def chartbrew_body(name: str) -> dict[str, Any]:
    """What Chartbrew's postgres form posts (client/src/slices/connection.js: addConnection)."""
    return {
        "name": name,
        "type": "postgres",
        "subType": "postgres",
        "host": "db.example.com",
        "port": "5432",
        "dbName": "mydatabase",
        "username": "dbuser",
        "password": "secretpassword",
        "ssl": True,
        "sslMode": "require",
        "sslCa": ca_pem(),
        "connectionString": "",
    }


def chartbrew_connections(team: str) -> str:
    return f"/team/{team}/connections"


def chartbrew_create(api: Api, tag: str, numbers: list[int]) -> Call:
    async def call(number: int) -> str | None:
        body = chartbrew_body(f"bench-cb-{tag}-{number:07d}")
        status, raw = await api.send("POST", chartbrew_connections(CHARTBREW_TEAM), body, {})
        if status == 200:
            numbers.append(int(orjson.loads(raw)["id"]))
        return expect(status, 200)

    return call


def chartbrew_put(api: Api, numbers: Sequence[int]) -> Call:
    """PUT of distinct connections in turn (request n edits numbers[n % len(numbers)])."""

    async def call(number: int) -> str | None:
        body = {"host": f"db-{number % 97}.example.com", "port": str(5400 + number % 50)}
        path = f"{chartbrew_connections(CHARTBREW_TEAM)}/{numbers[number % len(numbers)]}"
        status, _ = await api.send("PUT", path, body, {})
        return expect(status, 200)

    return call


def chartbrew_list(api: Api, team: str) -> Call:
    """The whole team's list, as the Chartbrew web client loads it (one array)."""

    async def call(_number: int) -> str | None:
        status, _ = await api.get(chartbrew_connections(team))
        return expect(status, 200)

    return call
