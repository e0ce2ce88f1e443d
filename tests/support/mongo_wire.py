"""A small in-process MongoDB server speaking the real wire protocol, for the MongoDB probe's tests.

No MongoDB can be installed here, so this serves what pymongo's async client sends for a connection
test and a table discovery, over real sockets (optionally TLS), with real SCRAM-SHA-256:

- framing: OP_MSG (2013) and the legacy OP_QUERY (2004) / OP_REPLY (1) handshake;
- commands: hello / isMaster, ping, buildInfo, saslStart / saslContinue (SCRAM-SHA-256: the right
  password succeeds, a wrong one fails with code 18 "Authentication failed." like mongod),
  listCollections, find, aggregate (with `$sample`), getMore, killCursors, endSessions;
- access control like mongod's: with `users`, data commands need an authenticated connection
  (code 13 Unauthorized otherwise), and `grants` limits a user to some databases.

Deliberately not a database: filters are ignored, `$sample` returns the first `size` documents in
insertion order (deterministic for assertions; mongod picks at random), every cursor is exhausted
in its first batch.

    async with MongoWireServer(databases={"shop": {"orders": [docs...]}}, users={"app": "pw"}) as server:
        server.port
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import os
import ssl
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.int64 import Int64
from pymongo.saslprep import saslprep

from tests.support.listeners import _Listener

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
MAX_WIRE_VERSION = 21  # MongoDB 7.0; pymongo 4.20 needs at least 9 (4.4)
SERVER_VERSION = "7.0.0-connhub-test"
SCRAM_ITERATIONS = 4096  # the minimum pymongo accepts

_HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
_MAX_MESSAGE = 48_000_000
_MORE_TO_COME = 1 << 1
_CHECKSUM_PRESENT = 1 << 0

# Commands mongod answers before authentication.
_OPEN_COMMANDS = {"hello", "ismaster", "ping", "buildinfo", "saslstart", "saslcontinue", "endsessions"}

Document = dict[str, Any]


class CommandError(Exception):
    """A command failure as mongod reports it: {ok: 0, errmsg, code, codeName}."""

    def __init__(self, code: int, code_name: str, message: str) -> None:
        super().__init__(message)
        self.code, self.code_name, self.message = code, code_name, message

    def reply(self) -> Document:
        return {"ok": 0.0, "errmsg": self.message, "code": self.code, "codeName": self.code_name}


def _auth_failed() -> CommandError:
    return CommandError(18, "AuthenticationFailed", "Authentication failed.")


# --- SCRAM-SHA-256, server side (RFC 5802 / RFC 7677) ---------------------------------------------


def _b64(data: bytes) -> bytes:
    return base64.standard_b64encode(data)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _scram_attributes(message: bytes) -> dict[bytes, bytes]:
    pairs = (item.partition(b"=") for item in message.split(b","))
    return {key: value for key, _, value in pairs}


@dataclass
class _Scram:
    """One SCRAM conversation. `salted` is None for an unknown user: the exchange runs to the end
    and fails then, as mongod does, so a client cannot tell unknown users from wrong passwords."""

    user: str
    client_first_bare: bytes
    server_first: bytes
    nonce: bytes
    salted: bytes | None

    @classmethod
    def start(cls, payload: bytes, password_of: Callable[[str], str | None]) -> _Scram:
        if not payload.startswith(b"n,,"):
            raise _auth_failed()  # channel binding or an authzid: not supported, like mongod
        bare = payload[3:]
        attributes = _scram_attributes(bare)
        user = attributes.get(b"n", b"").replace(b"=2C", b",").replace(b"=3D", b"=").decode()
        salt = os.urandom(16)
        nonce = attributes.get(b"r", b"") + _b64(os.urandom(18))
        server_first = b"r=" + nonce + b",s=" + _b64(salt) + b",i=" + str(SCRAM_ITERATIONS).encode()
        salted = None
        password = password_of(user)
        if password is not None:
            salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, SCRAM_ITERATIONS)
        return cls(user, bare, server_first, nonce, salted)

    def finish(self, client_final: bytes) -> bytes:
        """Checks the client's proof; returns the server's final message (`v=` signature)."""
        without_proof, _, proof = client_final.rpartition(b",p=")
        if self.salted is None or _scram_attributes(without_proof).get(b"r") != self.nonce:
            raise _auth_failed()
        auth_message = b",".join((self.client_first_bare, self.server_first, without_proof))
        client_key = _hmac(self.salted, b"Client Key")
        signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
        expected = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        if not hmac.compare_digest(base64.standard_b64decode(proof), expected):
            raise _auth_failed()
        return b"v=" + _b64(_hmac(_hmac(self.salted, b"Server Key"), auth_message))


# --- messages ---------------------------------------------------------------------------------------


def _parse_op_msg(body: bytes) -> tuple[int, Document]:
    """(flagBits, the command with any document sequences merged in as lists)."""
    (flags,) = struct.unpack_from("<I", body)
    end = len(body) - (4 if flags & _CHECKSUM_PRESENT else 0)
    position, command = 4, Document()
    while position < end:
        kind = body[position]
        (size,) = struct.unpack_from("<i", body, position + 1)
        section = body[position + 1 : position + 1 + size]
        if kind == 0:
            command.update(bson.decode(section))
        else:  # kind 1: int32 size, cstring identifier, documents
            name_end = section.index(b"\x00", 4)
            command[section[4:name_end].decode()] = bson.decode_all(section[name_end + 1 :])
        position += 1 + size
    return flags, command


def _parse_op_query(body: bytes) -> tuple[str, Document]:
    """(database, command) of a legacy `db.$cmd` query."""
    name_end = body.index(b"\x00", 4)
    collection = body[4:name_end].decode()
    query = bson.decode(body[name_end + 9 :][: struct.unpack_from("<i", body, name_end + 9)[0]])
    if "$query" in query:
        query = dict(query["$query"])
    return collection.split(".", 1)[0], query


def _op_msg(request_id: int, response_to: int, reply: Document) -> bytes:
    body = struct.pack("<IB", 0, 0) + bson.encode(reply)
    return _HEADER.pack(_HEADER.size + len(body), request_id, response_to, OP_MSG) + body


def _op_reply(request_id: int, response_to: int, reply: Document) -> bytes:
    body = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(reply)
    return _HEADER.pack(_HEADER.size + len(body), request_id, response_to, OP_REPLY) + body


def _cursor(namespace: str, documents: Sequence[Mapping[str, Any]], batch: str = "firstBatch") -> Document:
    return {"cursor": {"id": Int64(0), "ns": namespace, batch: list(documents)}, "ok": 1.0}


# --- the server -------------------------------------------------------------------------------------


@dataclass
class _Connection:
    number: int
    user: str | None = None  # authenticated user
    scram: dict[int, _Scram] = field(default_factory=dict)


class MongoWireServer(_Listener):
    """See the module docstring. `commands` records (database, command name) of every command."""

    def __init__(
        self,
        databases: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]] | None = None,
        users: Mapping[str, str] | None = None,
        *,
        auth_db: str = "admin",
        grants: Mapping[str, Collection[str]] | None = None,
        tls: ssl.SSLContext | None = None,
        version: str = SERVER_VERSION,
        primary_elsewhere: str | None = None,
    ) -> None:
        super().__init__(tls)
        # host:port of the primary a replica-set secondary names in `hello` (a discovered member).
        self.primary_elsewhere = primary_elsewhere
        self.databases = databases or {}
        self.users = dict(users or {})
        self.auth_db = auth_db
        self.grants = grants
        self.version = version
        self.commands: list[tuple[str, str]] = []
        self.sample_sizes: list[int] = []
        self._request_ids = 0
        self._commands: dict[str, Callable[[_Connection, str, Document], Document]] = {
            "hello": self._hello,
            "ismaster": self._hello,
            "ping": lambda *_: {"ok": 1.0},
            "buildinfo": self._build_info,
            "saslstart": self._sasl_start,
            "saslcontinue": self._sasl_continue,
            "listcollections": self._list_collections,
            "find": self._find,
            "aggregate": self._aggregate,
            "getmore": self._get_more,
            "killcursors": lambda _c, _db, cmd: {"cursorsKilled": cmd.get("cursors", []), "ok": 1.0},
            "endsessions": lambda *_: {"ok": 1.0},
        }

    async def __aenter__(self) -> MongoWireServer:
        await super().__aenter__()
        return self

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    def command_names(self) -> list[str]:
        return [name for _, name in self.commands]

    # --- framing ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self.accepted)
        try:
            while True:
                header = await reader.readexactly(_HEADER.size)
                length, request_id, _, opcode = _HEADER.unpack(header)
                if not _HEADER.size < length <= _MAX_MESSAGE:
                    return
                body = await reader.readexactly(length - _HEADER.size)
                answer = self._answer(connection, request_id, opcode, body)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client went away mid-message

    def _answer(self, connection: _Connection, request_id: int, opcode: int, body: bytes) -> bytes | None:
        self._request_ids += 1
        if opcode == OP_MSG:
            flags, command = _parse_op_msg(body)
            reply = self._run(connection, str(command.get("$db", "admin")), command)
            return None if flags & _MORE_TO_COME else _op_msg(self._request_ids, request_id, reply)
        if opcode == OP_QUERY:
            database, command = _parse_op_query(body)
            return _op_reply(self._request_ids, request_id, self._run(connection, database, command))
        return None  # OP_COMPRESSED is never negotiated; anything else has no reply

    # --- commands ---

    def _run(self, connection: _Connection, database: str, command: Document) -> Document:
        name = next(iter(command), "")
        self.commands.append((database, name))
        handler = self._commands.get(name.lower())
        try:
            if handler is None:
                raise CommandError(59, "CommandNotFound", f"no such command: '{name}'")
            self._authorize(connection, database, name)
            return handler(connection, database, command)
        except CommandError as error:
            return error.reply()

    def _authorize(self, connection: _Connection, database: str, name: str) -> None:
        if not self.users or name.lower() in _OPEN_COMMANDS:
            return
        if connection.user is None:
            raise CommandError(13, "Unauthorized", f"Command {name} requires authentication")
        if self.grants is not None and database not in self.grants.get(connection.user, ()):
            raise CommandError(13, "Unauthorized", f"not authorized on {database} to execute command {{ {name}: ... }}")

    def _hello(self, connection: _Connection, _database: str, command: Document) -> Document:
        reply: Document = {
            "helloOk": True,
            "isWritablePrimary": True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": _MAX_MESSAGE,
            "maxWriteBatchSize": 100_000,
            "localTime": datetime.datetime.now(datetime.UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": connection.number,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
            "ok": 1.0,
        }
        if self.primary_elsewhere is not None:
            # A secondary of replica set rs0: a client that discovers the set goes on to the primary.
            member = f"127.0.0.1:{self.port}"
            reply.update(
                isWritablePrimary=False,
                secondary=True,
                setName="rs0",
                hosts=[self.primary_elsewhere, member],
                primary=self.primary_elsewhere,
                me=member,
            )
        if "hello" not in command:
            reply["ismaster"] = reply["isWritablePrimary"]  # the legacy name answers with the legacy field
        source, _, user = str(command.get("saslSupportedMechs", "")).partition(".")
        if source == self.auth_db and user in self.users:
            reply["saslSupportedMechs"] = ["SCRAM-SHA-256"]
        return reply

    def _build_info(self, *_: Any) -> Document:
        numbers = [int(part) for part in self.version.split("-", 1)[0].split(".")] + [0]
        return {"version": self.version, "versionArray": numbers[:4], "gitVersion": "connhub-test", "ok": 1.0}

    def _sasl_start(self, connection: _Connection, database: str, command: Document) -> Document:
        if command.get("mechanism") != "SCRAM-SHA-256":
            raise _auth_failed()
        payload = bytes(command.get("payload", b""))
        # Users live in `auth_db` only: authenticating against another database fails, as it does
        # on mongod when the user was created elsewhere.
        scram = _Scram.start(payload, lambda user: self.users.get(user) if database == self.auth_db else None)
        conversation = len(connection.scram) + 1
        connection.scram[conversation] = scram
        return {"conversationId": conversation, "done": False, "payload": scram.server_first, "ok": 1.0}

    def _sasl_continue(self, connection: _Connection, _database: str, command: Document) -> Document:
        conversation = int(command.get("conversationId", 0))
        scram = connection.scram.pop(conversation, None)
        if scram is None:
            raise CommandError(17, "ProtocolError", "No SASL session state found")
        server_final = scram.finish(bytes(command.get("payload", b"")))
        connection.user = scram.user
        return {"conversationId": conversation, "done": True, "payload": server_final, "ok": 1.0}

    def _list_collections(self, _connection: _Connection, database: str, _command: Document) -> Document:
        entries = [
            {"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}}
            for name in self.databases.get(database, {})
        ]
        return _cursor(f"{database}.$cmd.listCollections", entries)

    def _documents(self, database: str, collection: str) -> Sequence[Mapping[str, Any]]:
        return self.databases.get(database, {}).get(collection, [])

    def _find(self, _connection: _Connection, database: str, command: Document) -> Document:
        collection = str(command["find"])
        limit = abs(int(command.get("limit", 0))) or None
        return _cursor(f"{database}.{collection}", self._documents(database, collection)[:limit])

    def _aggregate(self, _connection: _Connection, database: str, command: Document) -> Document:
        collection = str(command["aggregate"])
        documents = self._documents(database, collection)
        for stage in command.get("pipeline", []):
            if "$sample" in stage:
                size = int(stage["$sample"]["size"])
                self.sample_sizes.append(size)
                documents = documents[:size]
            elif "$limit" in stage:
                documents = documents[: int(stage["$limit"])]
            else:
                raise CommandError(40324, "Location40324", f"Unrecognized pipeline stage name: {next(iter(stage))!r}")
        return _cursor(f"{database}.{collection}", documents)

    def _get_more(self, _connection: _Connection, database: str, command: Document) -> Document:
        # Every cursor is exhausted in its first batch (id 0), so a getMore finds nothing.
        return _cursor(f"{database}.{command.get('collection', '')}", [], batch="nextBatch")
