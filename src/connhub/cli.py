"""The `connhub` command: serve, migrate, keys generate|rotate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from connhub import __version__
from connhub.config import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    handler = {"serve": serve, "migrate": migrate, "keys": keys}[args.command]
    try:
        return handler(args)
    except ConfigurationError as problem:
        print(f"connhub: {problem}", file=sys.stderr)
        return 2


class ConfigurationError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connhub", description="Keeps an organization's database connections."
    )
    parser.add_argument("--version", action="version", version=f"connhub {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the HTTP API")
    serve_cmd.add_argument("--host", help="listen address [CONNHUB_HOST, 127.0.0.1]")
    serve_cmd.add_argument("--port", type=int, help="listen port [CONNHUB_PORT, 8080]")
    serve_cmd.add_argument("--database-url", help="store URL [CONNHUB_DATABASE_URL]")
    serve_cmd.add_argument("--workers", type=int, default=1, help="worker processes [1: best on 2 cores]")
    serve_cmd.add_argument("--log-level", help="DEBUG, INFO, WARNING [CONNHUB_LOG_LEVEL, INFO]")
    commands.add_parser("migrate", help="apply store migrations (Alembic)")
    keys_cmd = commands.add_parser("keys", help="encryption keys")
    key_actions = keys_cmd.add_subparsers(dest="action", required=True)
    generate = key_actions.add_parser("generate", help="print a new KEY_ID:BASE64 entry")
    generate.add_argument("--id", help="key id (default: k<timestamp>)")
    rotate = key_actions.add_parser("rotate", help="re-encrypt every secret under the active key")
    rotate.add_argument("--batch-size", type=int, default=500)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in ("host", "port", "database_url", "log_level")
        if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValueError as problem:
        raise ConfigurationError(f"invalid configuration: {problem}") from None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    problems = settings.production_problems()
    if problems:
        raise ConfigurationError("refusing to start in production: " + "; ".join(problems))
    if settings.database_url.startswith("sqlite"):
        _migrate_in_child(settings)
    print(f"connhub {__version__} listening on http://{settings.host}:{settings.port}")
    print(f"store: {_redacted(settings.database_url)}")
    for warning in settings.development_warnings():
        print(f"warning: {warning}")
    _export(settings)
    uvicorn.run(
        "connhub.api.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        http=_http_protocol(),
    )
    return 0


def _migrate_in_child(settings: Settings) -> None:
    """`connhub migrate` in a child process: Alembic (~11 MB) never loads into the serving process."""
    import os
    import subprocess

    env = {**os.environ, "CONNHUB_DATABASE_URL": settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "connhub.cli", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ConfigurationError(f"the store could not be migrated:\n{done.stderr.strip()}")


def _http_protocol() -> Any:
    """uvicorn's httptools protocol with bounded request heads (connhub.api.protocol)."""
    try:
        from connhub.api.protocol import BoundedHeadProtocol
    except ImportError:  # uvicorn without httptools: its h11 protocol bounds head sizes itself
        return "auto"
    return BoundedHeadProtocol


def _export(settings: Settings) -> None:
    """Pass command-line overrides to worker processes, which read settings from the environment."""
    import os

    os.environ["CONNHUB_HOST"] = settings.host
    os.environ["CONNHUB_PORT"] = str(settings.port)
    os.environ["CONNHUB_DATABASE_URL"] = settings.database_url
    os.environ["CONNHUB_LOG_LEVEL"] = settings.log_level


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def migrate(args: argparse.Namespace) -> int:
    from connhub.store.schema import migrate as apply_migrations

    settings = _settings(args)
    apply_migrations(settings.database_url)
    print(f"store at {_redacted(settings.database_url)} is up to date")
    return 0


def keys(args: argparse.Namespace) -> int:
    from connhub.secrets import new_key_entry

    if args.action == "generate":
        print(new_key_entry(args.id))
        return 0
    return asyncio.run(_rotate(_settings(args), args.batch_size))


async def _rotate(settings: Settings, batch_size: int) -> int:
    from connhub import bootstrap
    from connhub.audit import Acting, acting_as

    core = bootstrap.build(settings)
    try:
        with acting_as(Acting(subject=_operator(), dialect="cli")):
            result = await core.service.rotate_keys(batch_size)
    finally:
        await core.close()
    print(f"active key: {result.active_key_id}")
    if not result.resealed and not result.unreadable:
        print("every secret is already under the active key")
    for key_id, count in sorted(result.resealed.items()):
        print(f"re-encrypted {count} secret(s) from key {key_id}")
    for key_id, count in sorted(result.unreadable.items()):
        print(f"could not open {count} secret(s) under key {key_id} (not in CONNHUB_ENCRYPTION_KEYS)")
    return 1 if result.unreadable else 0


def _operator() -> str | None:
    """Who runs a CLI command, for the audit trail: the login name, when the system knows it."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


if __name__ == "__main__":
    logging.basicConfig()
    sys.exit(main())
