"""Every rule of SPEC.md section 3, through the one function both dialects call."""

from __future__ import annotations

from typing import Any

import pytest

from connhub.domain.connection import (
    Engine,
    SslMode,
    apply_patch,
    spec_fields,
    validate_product_name,
    validate_spec,
)
from connhub.domain.errors import ValidationFailed
from tests.conftest import seed_body
from tests.support.pki import self_signed

CERT, KEY = self_signed()


def problems(**overrides: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_spec(seed_body(**overrides))
    return caught.value.fields


def test_the_seed_body_is_valid_and_round_trips() -> None:
    spec = validate_spec(seed_body(type="postgresql"))
    assert spec.engine is Engine.POSTGRESQL
    assert validate_spec(spec_fields(spec)) == spec


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("configName", "ab"),
        ("configName", "  ab  "),
        ("configName", "x" * 101),
        ("configName", "bad\x07name"),
        ("configName", 123),
        ("type", "DB2"),
        ("type", None),
        ("host", "db.example.com:5432"),
        ("host", "postgres://db"),
        ("host", "db example.com"),
        ("host", "db/path"),
        ("host", "-bad.example.com"),
        ("host", "a" * 64 + ".com"),
        ("host", ("a" * 60 + ".") * 5),
        ("port", "5432"),
        ("port", 0),
        ("port", 65536),
        ("port", True),
        ("port", 54.0),
        ("databaseName", ""),
        ("databaseName", "d" * 129),
        ("userName", None),
        ("password", ""),
        ("password", "p" * 1025),
        ("password", None),
        ("schema", ""),
        ("schema", "s" * 129),
    ],
)
def test_each_broken_rule_names_its_field(field: str, value: Any) -> None:
    body = seed_body()
    if value is None:
        body.pop(field)
    else:
        body[field] = value
    with pytest.raises(ValidationFailed) as caught:
        validate_spec(body)
    assert set(caught.value.fields) == {field}


def test_hosts_that_are_fine() -> None:
    for host in ("db", "db.example.com", "10.0.0.1", "::1", "2001:db8::5", "xn--bcher-kva.example", "a-b.c"):
        assert validate_spec(seed_body(host=host)).host == host


def test_config_name_is_trimmed_and_type_upper_cased() -> None:
    spec = validate_spec(seed_body(configName="  my db  ", type="mongodb"))
    assert (spec.config_name, spec.engine.value) == ("my db", "MONGODB")


def test_unknown_fields_are_rejected_by_name() -> None:
    assert problems(colour="blue") == {"colour": "unknown field"}


def test_every_bad_field_is_reported_at_once() -> None:
    assert set(problems(port="x", host="a b", configName="")) == {"port", "host", "configName"}


def test_a_reason_never_quotes_the_password() -> None:
    fields = problems(password="p" * 1025)
    assert "ppp" not in str(fields)


def test_metadata_rules() -> None:
    assert set(problems(metadata={"team": {"nested": "x"}})) == {"metadata.team"}
    assert set(problems(metadata={"team": ["a"]})) == {"metadata.team"}
    assert set(problems(metadata={"team": 1})) == {"metadata.team"}
    assert set(problems(metadata={"team": None})) == {"metadata.team"}
    assert set(problems(metadata={"k": "v" * 2001})) == {"metadata.k"}
    assert set(problems(metadata={"k" * 101: "v"})) == {"metadata"}
    assert set(problems(metadata={f"k{i}": "v" for i in range(51)})) == {"metadata"}
    assert set(problems(metadata=["a"])) == {"metadata"}
    assert validate_spec(seed_body(metadata={f"k{i}": "v" * 2000 for i in range(50)})).metadata


def test_ssl_rules() -> None:
    assert set(problems(ssl={"ca": CERT})) == {"ssl.mode"}
    assert set(problems(ssl={"mode": "sometimes"})) == {"ssl.mode"}
    assert set(problems(ssl={"mode": "require", "ca": "not a pem"})) == {"ssl.ca"}
    broken = CERT.replace(CERT.splitlines()[3], "A" * len(CERT.splitlines()[3]))
    assert set(problems(ssl={"mode": "require", "ca": broken})) == {"ssl.ca"}
    assert set(problems(ssl={"mode": "require", "ca": KEY})) == {"ssl.ca"}
    assert set(problems(ssl={"mode": "require", "cert": CERT})) == {"ssl.key"}
    assert set(problems(ssl={"mode": "require", "key": KEY})) == {"ssl.cert"}
    assert set(problems(ssl={"mode": "require", "cert": CERT, "key": CERT})) == {"ssl.key"}
    assert set(problems(ssl={"mode": "require", "ca": CERT + "x" * 65536})) == {"ssl.ca"}
    assert set(problems(ssl={"mode": "require", "extra": 1})) == {"ssl.extra"}
    spec = validate_spec(seed_body(ssl={"mode": "verify-full", "ca": CERT, "cert": CERT, "key": KEY}))
    assert spec.ssl is not None and spec.ssl.mode is SslMode.VERIFY_FULL
    assert spec.ssl.summary.has_ca and spec.ssl.summary.has_key


def test_key_parse_errors_never_quote_the_key() -> None:
    broken_key = KEY.replace(KEY.splitlines()[1], "B" * len(KEY.splitlines()[1]))
    fields = problems(ssl={"mode": "require", "cert": CERT, "key": broken_key})
    assert "BBBB" not in str(fields)


def test_connection_string_fills_the_fields() -> None:
    body = seed_body(host=None, port=None, databaseName=None, userName=None, password=None)
    body["connectionString"] = "postgresql://app:p%40ss%3Aw%2Fd@db.internal:6543/sales?sslmode=require"
    spec = validate_spec(body)
    assert (spec.host, spec.port, spec.database_name, spec.user_name, spec.password) == (
        "db.internal",
        6543,
        "sales",
        "app",
        "p@ss:w/d",
    )
    assert spec.options == {"sslmode": "require"}


def test_connection_string_errors_never_quote_it() -> None:
    fields = problems(connectionString="ftp://u:Secret1@h/x")
    assert set(fields) == {"connectionString"} and "Secret1" not in str(fields)


def test_patch_absent_keeps_null_clears() -> None:
    current = spec_fields(validate_spec(seed_body(ssl={"mode": "require", "ca": CERT})))
    merged = apply_patch(current, {"schema": None, "port": 6000, "ssl": {"mode": "verify-ca"}})
    spec = validate_spec(merged)
    assert spec.schema_name is None and spec.port == 6000
    assert spec.ssl is not None and spec.ssl.mode is SslMode.VERIFY_CA and spec.ssl.ca == CERT
    with pytest.raises(ValidationFailed) as caught:
        validate_spec(apply_patch(current, {"host": None}))
    assert set(caught.value.fields) == {"host"}


def test_product_name_header() -> None:
    assert validate_product_name("  My-Product_1 ") == "my-product_1"
    for bad in (None, "", "my product", "x" * 101, "é"):
        with pytest.raises(ValidationFailed) as caught:
            validate_product_name(bad)
        assert set(caught.value.fields) == {"X-Product-Name"}
