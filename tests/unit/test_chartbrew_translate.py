"""The Chartbrew dialect's client rules, as pure translations (no HTTP): what its web client sends
and how it reads the answers (chartbrew v5.3.0 client/src/sources/*-connection-form.jsx, slices)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from connhub.api.dialects.chartbrew import translate
from connhub.domain.connection import Connection, SslMode, SslSummary
from connhub.domain.engines import Engine
from connhub.domain.errors import ValidationFailed
from connhub.domain.reports import Column, ErrorCategory, Table, TestReport, failure_report
from tests.support.pki import self_signed

CA_PEM, _ = self_signed("translate-ca")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
STORED = Connection(
    id=uuid4(), number=7, tenant="1", product_name=None, config_name="Events", engine=Engine.MONGODB,
    host="db.example.com", port=27017, database_name="shop", user_name="app", schema_name=None,
    ssl=SslSummary(SslMode.REQUIRE, has_ca=True), metadata=None, options={"authSource": "admin"},
    sub_type="mongodb", masked_connection_string="mongodb://app:****@db.example.com:27017/shop",
    created_at=NOW, updated_at=NOW, version=3, ssh=None,
)  # fmt: skip


def form_body(**fields: Any) -> dict[str, Any]:
    body = {"type": "postgres", "subType": "timescaledb", "name": "Warehouse", "host": "db.example.com",
            "port": "5432", "dbName": "app", "username": "u", "password": "p", "connectionString": ""}  # fmt: skip
    return {**body, **fields}


def test_the_mongodb_forms_rows_are_ignored_and_its_options_list_kept() -> None:
    rows = [{"id": "f3b1", "key": "authSource", "value": "admin"}]
    fields = translate.canonical_fields(
        {**form_body(type="mongodb", port="27017"), "optionsArray": rows, "options": [{"authSource": "admin"}]}
    )
    assert fields["options"] == {"authSource": "admin"} and "connectionString" not in fields


def test_ssh_switched_off_is_accepted_and_its_fields_ignored() -> None:
    fields = translate.canonical_fields(form_body(useSsh=False, sshHost="", sshPort="", sshUsername="jump"))
    assert not any(name.startswith("ssh") for name in fields)


def test_ssh_switched_on_gives_the_canonical_tunnel() -> None:
    fields = translate.canonical_fields(form_body(useSsh=True, sshHost="bastion", sshUsername="jump", sshPassword="s"))
    assert fields["ssh"] == {"host": "bastion", "userName": "jump", "password": "s"}


def test_ssl_switched_on_with_disable_picked_is_disable() -> None:
    assert translate.canonical_fields(form_body(ssl=True, sslMode="disable"))["ssl"] == {"mode": "disable"}


def test_a_put_of_the_whole_read_changes_nothing() -> None:
    read = translate.render(STORED, [Table("orders", (Column("_id", "objectId", False, True),))])
    patch = translate.canonical_fields({**read, "optionsArray": [], "useSsh": False}, STORED)
    # Whatever is left is the stored value said again: the options and the TLS mode as stored.
    assert patch == {"options": {"authSource": "admin"}, "ssl": {"mode": "require"}}


def test_options_are_answered_as_chartbrew_stores_them() -> None:
    assert translate.render(STORED, None)["options"] == [{"authSource": "admin"}]


def test_a_connection_is_answered_with_a_password_held_and_never_shown() -> None:
    answer = translate.render(STORED, None)
    assert (answer["password"], answer["hasPassword"]) == (None, True)  # every stored connection has one


def test_the_schema_is_in_chartbrews_shape_columns_in_order() -> None:
    table = Table("orders", (Column("total", "numeric", False, False), Column("id", "bigint", False, True)))
    schema = translate.schema_json([table])
    assert schema == {
        "tables": ["orders"],
        "description": {
            "orders": {
                "total": {"type": "numeric", "allowNull": False, "primaryKey": False},
                "id": {"type": "bigint", "allowNull": False, "primaryKey": True},
            }
        },
    }
    assert list(schema["description"]["orders"]) == ["total", "id"]


def test_a_failed_test_is_in_the_error_shape_too() -> None:
    good = TestReport(status="success", latency_ms=3.2, message="Connected")
    assert "code" not in translate.test_answer(good) and translate.FAILED_TEST_STATUS == 400
    assert translate.test_answer(good, [])["schema"] == {"tables": [], "description": {}}
    failed = translate.test_answer(failure_report(ErrorCategory.PORT_CLOSED, "refused"))
    # A 400 is also the JSON error shape: code, title, message (the report's).
    assert (failed["code"], failed["title"], failed["message"], failed["success"]) == (
        "CONN-1010",
        "Connection test failed",
        "refused",
        False,
    )


def test_unpicked_file_slots_are_ignored() -> None:
    parts = {"sslCa": CA_PEM.encode(), "sslCert": b"null", "sslKey": b"null"}
    assert translate.uploaded_files(parts) == ({"ca": CA_PEM}, None)  # PEM texts, no SSH key file
    with pytest.raises(ValidationFailed) as raised:
        translate.uploaded_files({"sslCa": b"null", "sslCert": b"null", "sslKey": b"null"})
    assert "no files were uploaded" in raised.value.fields["body"]


def test_a_test_with_files_is_the_connection_part_and_the_picked_pems() -> None:
    parts = {"connection": json.dumps({"name": "", "ssl": True}).encode(), "sslCa": CA_PEM.encode(), "sslKey": b"null"}
    body = translate.test_with_files_body(parts, "postgres")
    assert body == {"name": translate.UNSAVED_NAME, "ssl": True, "sslCa": CA_PEM, "type": "postgres"}
    for broken in (b"", b"[]", b"{not json"):
        with pytest.raises(ValidationFailed) as raised:
            translate.test_with_files_body({"connection": broken}, "postgres")
        assert "connection" in raised.value.fields
