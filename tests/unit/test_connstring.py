"""Connection strings: parse is the inverse of build, and masking never shows the password."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from connhub.domain import connstring
from connhub.domain.connection import validate_spec
from connhub.domain.errors import ValidationFailed

NASTY_PASSWORD = "p@ss:w/rd?#%25%é日本 ;&="
SCHEMES = ["postgresql", "postgres", "mysql", "mariadb", "mongodb", "sqlserver", "mssql", "oracle"]

# Any Unicode text but lone surrogates (they cannot be encoded, so no client can send them).
any_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
label = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\Z")
hostnames = st.lists(label, min_size=1, max_size=4).map(".".join)
hosts = st.one_of(hostnames, st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
ports = st.one_of(st.none(), st.integers(1, 65535))
option_keys = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,15}\Z").filter(
    lambda key: key.lower() not in {*connstring.SECRET_PARAMETERS, *connstring.DATABASE_PARAMETERS, "srv"}
)
options = st.dictionaries(option_keys, st.text(st.characters(exclude_categories=("Cs",)), max_size=20))


@given(
    scheme=st.sampled_from(SCHEMES),
    host=hosts,
    port=ports,
    user=any_text,
    password=any_text,
    database=any_text,
    extra=options,
)
def test_parse_gives_back_what_build_encoded(
    scheme: str, host: str, port: int | None, user: str, password: str, database: str, extra: dict[str, str]
) -> None:
    parsed = connstring.parse(connstring.build(scheme, host, port, user, password, database, extra))

    engine, default_port = connstring.SCHEMES[scheme]
    assert (parsed.engine, parsed.host, parsed.port) == (engine, host, port or default_port)
    assert (parsed.user, parsed.password, parsed.database) == (user, password, database)
    assert parsed.options == extra


@given(host=hostnames, user=any_text, password=any_text, database=any_text)
def test_mongodb_srv_round_trips_and_says_srv(host: str, user: str, password: str, database: str) -> None:
    parsed = connstring.parse(connstring.build("mongodb+srv", host, None, user, password, database))

    assert (parsed.host, parsed.user, parsed.password, parsed.database) == (host, user, password, database)
    assert parsed.options == {"srv": "true"}


@given(
    scheme=st.sampled_from(SCHEMES),
    host=hosts,
    port=ports,
    user=any_text,
    password=st.text(st.characters(exclude_categories=("Cs",)), min_size=4, max_size=40),
    database=any_text,
)
def test_masked_never_shows_the_password(
    scheme: str, host: str, port: int | None, user: str, password: str, database: str
) -> None:
    uri = connstring.build(scheme, host, port, user, password, database)
    shown = connstring.masked(uri)
    # Only meaningful when the password is not also part of what may be shown.
    visible = connstring.build(scheme, host, port, user, "", database)
    assume(password not in visible and quote(password, safe="") not in visible)

    assert password not in shown
    assert quote(password, safe="") not in shown
    assert connstring.parse(shown).password == connstring.MASK
    assert connstring.parse(shown).user == user


def test_a_password_with_every_reserved_character_round_trips() -> None:
    uri = connstring.build("mysql", "db.example.com", 3306, "app user", NASTY_PASSWORD, "sales/eu")

    assert uri == (
        "mysql://app%20user:p%40ss%3Aw%2Frd%3F%23%2525%25%C3%A9%E6%97%A5%E6%9C%AC%20%3B%26%3D"
        "@db.example.com:3306/sales%2Feu"
    )
    parsed = connstring.parse(uri)
    assert (parsed.user, parsed.password, parsed.database) == ("app user", NASTY_PASSWORD, "sales/eu")
    assert connstring.masked(uri) == "mysql://app%20user:****@db.example.com:3306/sales%2Feu"


def test_host_case_and_ipv6_brackets_are_kept_as_given() -> None:
    assert connstring.parse("postgresql://u:p@DB.Example.COM/d").host == "DB.Example.COM"
    parsed = connstring.parse("sqlserver://sa:pw@[2001:db8::1]:14330/master")
    assert (parsed.host, parsed.port, parsed.engine) == ("2001:db8::1", 14330, "SQL_SERVER")


def test_an_unencoded_at_sign_in_the_password_still_works() -> None:
    parsed = connstring.parse("postgres://admin:p@ss@db.internal:5433/app")

    assert (parsed.user, parsed.password, parsed.host, parsed.port) == ("admin", "p@ss", "db.internal", 5433)
    assert connstring.masked("postgres://admin:p@ss@db.internal:5433/app") == (
        "postgres://admin:****@db.internal:5433/app"
    )


def test_query_parameters_become_options_except_secrets_and_the_database() -> None:
    parsed = connstring.parse("sqlserver://db.local?database=sales&password=s3cret&encrypt=true")

    assert (parsed.database, parsed.password) == ("sales", "s3cret")
    assert parsed.options == {"encrypt": "true"}
    assert connstring.masked("sqlserver://db.local?database=sales&password=s3cret") == (
        "sqlserver://db.local?database=sales&password=****"
    )


def test_mongodb_options_and_jdbc_prefix() -> None:
    parsed = connstring.parse("mongodb://u:p@mongo.local/app?authSource=admin&replicaSet=rs0")
    assert parsed.options == {"authSource": "admin", "replicaSet": "rs0"}
    assert connstring.parse("jdbc:oracle://scott:tiger@ora.local:1522/ORCLPDB1").fields() == {
        "type": "ORACLE",
        "host": "ora.local",
        "port": 1522,
        "databaseName": "ORCLPDB1",
        "userName": "scott",
        "password": "tiger",
    }


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("redis://u:hunter2-secret@h/0", "must be a URI starting with one of"),
        ("mysql://u:pa/hunter2-secret@h/db", "has an invalid port"),
        ("mysql://u:hunter2-secret@h:99999/db", "has an invalid port"),
        ("mongodb+srv://u:hunter2-secret@cluster.example.net:27017/db", "must not name a port"),
        ("mongodb://u:hunter2-secret@a,b/db", "must name one host"),
        ("postgresql://u:hunter2-secret%ff@h/db", "not UTF-8"),
        ("postgresql://u:hunter2-secret@/db", "must name a host"),
    ],
)
def test_refusals_say_why_without_quoting_the_uri(uri: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as refused:
        connstring.parse(uri)

    assert "hunter2" not in str(refused.value)
    assert "hunter2" not in connstring.masked(uri)


def test_a_uri_that_disagrees_with_the_given_type_is_refused() -> None:
    fields = {
        "configName": "warehouse",
        "type": "POSTGRESQL",
        "connectionString": "mysql://u:p@db.local/app",
    }

    with pytest.raises(ValidationFailed) as refused:
        validate_spec(fields)

    assert set(refused.value.fields) == {"connectionString"}


def test_uri_options_merge_with_explicit_options_which_win() -> None:
    spec = validate_spec(
        {
            "configName": "events",
            "connectionString": "mongodb://u:p@mongo.local/app?authSource=admin",
            "options": {"replicaSet": "rs0", "authSource": "users"},
        }
    )

    assert spec.options == {"authSource": "users", "replicaSet": "rs0"}


# --- the password under an encoded key (issue 14.3) -------------------------------------------


@pytest.mark.parametrize("key", ["%70assword", "pass%77ord", "PASSWORD", "P%57D", "%70ass", "pwd"])
def test_an_encoded_password_key_is_the_password_and_is_masked(key: str) -> None:
    uri = f"postgresql://u@h:5432/db?sslmode=require&{key}=S3cret&x=1"

    parsed = connstring.parse(uri)

    assert parsed.password == "S3cret" and parsed.options == {"sslmode": "require", "x": "1"}
    assert connstring.masked(uri) == f"postgresql://u@h:5432/db?sslmode=require&{key}=****&x=1"


@pytest.mark.parametrize(
    "key", ["sslpassword", "ssl%70assword", "tlsCertificateKeyFilePassword", "wallet_password", "Client-Secret"]
)
def test_other_secret_query_keys_are_refused_and_the_string_hidden(key: str) -> None:
    uri = f"mongodb://u:pw@h/db?{key}=S3cret"

    with pytest.raises(ValueError, match="password field") as refused:
        connstring.parse(uri)
    assert "S3cret" not in str(refused.value)
    assert connstring.masked(uri) == "mongodb://****"


def test_masked_drops_the_fragment_parse_ignores() -> None:
    assert connstring.masked("mysql://u:pw@h/db?a=1#pw") == "mysql://u:****@h/db?a=1"


@pytest.mark.parametrize(
    # The domain takes options as one object; Chartbrew's list form is its translator's (tests/api/test_chartbrew.py).
    "options", [{"password": "x"}, {"sslPassword": "x"}, {"Pwd": "x"}, {"a": "1", "pass": "x"}]
)
def test_secret_option_keys_are_refused_naming_where_the_password_goes(options: object) -> None:
    body = {
        "configName": "shop",
        "type": "POSTGRESQL",
        "host": "h",
        "port": 5432,
        "databaseName": "d",
        "userName": "u",
        "password": "p",
        "options": options,
    }
    with pytest.raises(ValidationFailed) as refused:
        validate_spec(body)
    assert "password field" in refused.value.fields["options"]
