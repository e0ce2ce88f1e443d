"""The Reporter dialect's client rules, as pure translations (no HTTP): what Lerian's Go clients send."""

from __future__ import annotations

from connhub.api.dialects.reporter import translate


def test_go_ssl_input_with_only_a_mode_is_that_mode() -> None:
    # fetcher SSLInput: `ca` is a string and `cert`/`key` pointers, none with omitempty.
    body = {"configName": "x", "ssl": {"mode": "require", "ca": "", "cert": None, "key": None}}
    assert translate.connection_body(body) == {"configName": "x", "ssl": {"mode": "require", "cert": None, "key": None}}


def test_an_ssl_object_without_a_mode_is_left_for_the_domain_to_refuse() -> None:
    assert translate.connection_body({"configName": "x", "ssl": {"mode": "", "ca": ""}}) == {
        "configName": "x",
        "ssl": {"mode": ""},
    }
    assert translate.connection_body({"configName": "x", "ssl": {}}) == {"configName": "x", "ssl": {}}


def test_a_body_without_ssl_is_unchanged() -> None:
    body = {"configName": "x", "ssl": None}
    assert translate.connection_body(body) is body


def test_unassigned_keeps_paging_and_the_order_only() -> None:
    params = {"page": "2", "limit": "5", "sortOrder": "asc", "type": "MYSQL", "sortBy": "configName"}
    assert translate.paging(params) == {"page": "2", "limit": "5", "sortOrder": "asc"}


def test_a_valid_schema_is_lerians_success_response() -> None:
    assert translate.SCHEMA_VALID["status"] == "success" and translate.SCHEMA_VALID["message"]
