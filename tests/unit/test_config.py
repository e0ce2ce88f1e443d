"""Settings: every problem is one line naming the variable, and never its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from connhub.config import ConfigError, Settings, load_settings, variable_names

SECRET = "S3cretPw-9d1c"


@pytest.mark.parametrize(
    "overrides",
    [
        {"database_url": f"mysql://root:{SECRET}@127.0.0.1/db"},
        {"database_url": f"postgresql://u:{SECRET}@db:port/x"},
        {"encryption_keys": f"k1:{SECRET}"},
        {"encryption_keys": SECRET},
        {"port": SECRET},
        {"jwt_public_key": f"/{SECRET}/missing.pem", "database_url": f"postgresql://u:{SECRET}@db:port/x"},
    ],
)
def test_a_bad_setting_never_quotes_its_value(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    text = str(caught.value)
    assert "\n" not in text and text.startswith("CONNHUB_")
    if "jwt_public_key" not in overrides:  # a key file's path is named, and this one has the word in it
        assert SECRET not in text


def test_every_problem_is_named_in_the_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(log_level="LOUD", probe_deny_cidrs="nowhere")
    assert "CONNHUB_LOG_LEVEL: must be one of" in str(caught.value)
    assert "CONNHUB_PROBE_DENY_CIDRS: invalid CIDR 'nowhere'" in str(caught.value)


def test_the_log_level_is_read_in_any_case() -> None:
    assert load_settings(log_level="debug").log_level == "DEBUG"


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("::1", False), ("localhost", False),
                                              ("0.0.0.0", True), ("10.1.2.3", True), ("::", True)])  # fmt: skip
def test_auth_disabled_off_loopback_is_warned_of(host: str, warned: bool) -> None:
    warnings = load_settings(host=host).startup_warnings()
    assert any("not a loopback address" in warning for warning in warnings) is warned


def test_a_short_hs256_secret_is_warned_of_without_being_quoted() -> None:
    short = load_settings(auth="jwt", jwt_secret=SECRET).startup_warnings()
    assert any("shorter than 32 bytes" in warning for warning in short)
    assert not any(SECRET in warning for warning in short)
    long = load_settings(auth="jwt", jwt_secret="x" * 32).startup_warnings()
    assert not any("shorter than 32 bytes" in warning for warning in long)


def test_the_paths_in_the_warnings_and_the_store_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.sqlite_path == tmp_path / ".connhub" / "connhub.db"
    assert any(f"development key in {tmp_path / '.connhub' / 'keys'}" in w for w in settings.startup_warnings())


@pytest.mark.parametrize(
    ("environment", "ttl_s"),
    [
        ({}, 300.0),
        ({"CONNHUB_TABLES_CACHE_TTL_S": "60"}, 60.0),
        ({"CONNHUB_SCHEMA_CACHE_TTL_S": "45"}, 45.0),  # the documented former name
        ({"CONNHUB_TABLES_CACHE_TTL_S": "60", "CONNHUB_SCHEMA_CACHE_TTL_S": "45"}, 60.0),  # the new name wins
    ],
)
def test_the_tables_cache_ttl_is_read_under_its_name_and_its_former_one(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], ttl_s: float
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert load_settings().tables_cache_ttl_s == ttl_s
    assert load_settings(tables_cache_ttl_s=5).tables_cache_ttl_s == 5  # code gives it by field name


@pytest.mark.parametrize("variable", ["CONNHUB_TABLES_CACHE_TTL_S", "CONNHUB_SCHEMA_CACHE_TTL_S"])
def test_a_bad_tables_cache_ttl_names_the_variable_that_was_set(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "-1")
    with pytest.raises(ConfigError, match=rf"^{variable}: Input should be greater than or equal to 0$"):
        load_settings()


def test_every_setting_names_its_variables() -> None:
    names = {field: variable_names(field) for field in Settings.model_fields}
    assert names["port"] == ("CONNHUB_PORT",)
    assert names["tables_cache_ttl_s"] == ("CONNHUB_TABLES_CACHE_TTL_S", "CONNHUB_SCHEMA_CACHE_TTL_S")
