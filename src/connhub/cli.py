"""The `connhub` command: serve, migrate, keys generate|rotate, and the API client (`conn`).

A problem a person can fix is one line on stderr, `connhub: ...`, and an exit code (see EXIT_CODES);
never a traceback, never a secret.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from connhub import __version__
from connhub.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from connhub.secrets import KeyRing
    from connhub.service import RotationResult

log = logging.getLogger("connhub")

EXIT_CODES = """exit codes:
  0  done
  1  the operation ran and failed: a live test failed, a connection was not found, secrets could not be opened
  2  usage or configuration error (the message names the setting or flag)
  3  a server could not be reached: the store (serve, migrate, keys rotate) or the API (conn)"""


class NotStarted(Exception):
    """`serve` refuses to start for a reason the line names, with what to do (exit 2)."""


class StoreUnreachable(Exception):
    """The store did not open: one line naming its URL (password hidden) and the driver's reason."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as problem:
        print(f"connhub: configuration error: {problem}", file=sys.stderr)
        return 2
    except NotStarted as problem:
        print(f"connhub: {problem}", file=sys.stderr)
        return 2
    except StoreUnreachable as problem:
        print(f"connhub: {problem}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    from connhub.client import add_client_commands

    parser = argparse.ArgumentParser(
        prog="connhub",
        description="Keeps an organization's database connections.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"connhub {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve_cmd = commands.add_parser("serve", help="run the HTTP API", epilog=EXIT_CODES)
    serve_cmd.formatter_class = argparse.RawDescriptionHelpFormatter
    serve_cmd.add_argument("--host", help="listen address [CONNHUB_HOST, 127.0.0.1]")
    serve_cmd.add_argument("--port", type=int, help="listen port [CONNHUB_PORT, 8080]")
    serve_cmd.add_argument("--database-url", help="store URL [CONNHUB_DATABASE_URL]")
    serve_cmd.add_argument("--workers", type=int, default=1, help="worker processes [1: best on 2 cores]")
    serve_cmd.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR [CONNHUB_LOG_LEVEL, INFO]")
    serve_cmd.add_argument("--log-format", choices=("text", "json"), help="[CONNHUB_LOG_FORMAT, text]")
    serve_cmd.set_defaults(handler=serve)
    migrate_cmd = commands.add_parser("migrate", help="apply store migrations (Alembic)")
    migrate_cmd.add_argument("--database-url", help="store URL [CONNHUB_DATABASE_URL]")
    migrate_cmd.set_defaults(handler=migrate)
    keys_cmd = commands.add_parser("keys", help="encryption keys")
    key_actions = keys_cmd.add_subparsers(dest="action", required=True)
    generate = key_actions.add_parser("generate", help="print a new KEY_ID:BASE64 entry")
    generate.add_argument("--id", help="key id, not one already in the key ring (default: k<UTC timestamp>)")
    generate.set_defaults(handler=generate_key)
    rotate = key_actions.add_parser("rotate", help="re-encrypt every secret under the active key")
    rotate.add_argument("--batch-size", type=int, default=500)
    rotate.set_defaults(handler=rotate_keys)
    add_client_commands(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in ("host", "port", "database_url", "log_level", "log_format")
        if getattr(args, name, None) is not None
    }
    return load_settings(**overrides)


# -- serve ----------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from connhub.logs import configure, logging_config

    settings = _settings(args)
    problems = settings.production_problems()
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
    problems = settings.scale_problems(args.workers) + _key_problems(settings)
    if problems:
        raise ConfigError("refusing to start: " + "; ".join(problems))
    _export(settings)
    _check_store(settings)
    ring = _key_ring(settings)
    configure(settings.log_level, settings.log_format)
    keys = "CONNHUB_ENCRYPTION_KEYS" if settings.encryption_keys else str(settings.key_file.resolve())
    log.info(
        "version %s starting: store %s; keys from %s (active %s)",
        __version__,
        _store_description(settings),
        keys,
        ring.active_id,
    )
    for warning in settings.startup_warnings():
        log.warning("%s", warning)
    with _metrics_across_workers(args.workers):
        uvicorn.run(
            "connhub.api.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            log_config=logging_config(settings.log_level, settings.log_format),
            log_level=settings.log_level.lower(),
            access_log=False,  # connhub.access writes the one access line of each request
            # Forwarded headers only from the proxies named (a TLS proxy's X-Forwarded-Proto keeps redirects https).
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=settings.forwarded_allow_ips or None,
            timeout_graceful_shutdown=10,
            http=_http_protocol(),
        )
    return 0


@contextmanager
def _metrics_across_workers(workers: int) -> Iterator[None]:
    """With several workers, /metrics sums them all (prometheus_client's multiprocess mode).

    Each worker writes its samples into a directory of this run's own, made empty here and removed
    after: samples of a previous run never add up into this one's. A directory the operator names
    in PROMETHEUS_MULTIPROC_DIR is used as it is (they empty it between runs).
    """
    import os
    import shutil
    import tempfile

    if workers < 2 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = tempfile.mkdtemp(prefix="connhub-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(directory, ignore_errors=True)


def _key_problems(settings: Settings) -> list[str]:
    """Keys that do not parse, named by setting (the message never quotes them)."""
    from connhub.secrets import KeyRing, KeyRingError, parse_key

    problems = []
    try:
        if settings.encryption_keys:
            KeyRing.parse(settings.encryption_keys)
        if settings.idempotency_key:
            parse_key("CONNHUB_IDEMPOTENCY_KEY", settings.idempotency_key)
    except KeyRingError as problem:
        problems.append(str(problem))
    return problems


def _check_store(settings: Settings) -> None:
    """SQLite: migrated here (in a child). PostgreSQL: must be at this version's schema already, or
    every route would answer 500: refuse to start, naming `connhub migrate`."""
    if settings.database_url.startswith("sqlite"):
        _migrate_in_child(settings)
        return
    from connhub.store.revision import HEAD, behind_message, store_revision

    with _opening_store(settings.database_url):
        revision = store_revision(settings.database_url)
    if revision != HEAD:
        raise NotStarted(behind_message(revision))


def _migrate_in_child(settings: Settings) -> None:
    """`connhub migrate` in a child process: Alembic (~11 MB) never loads into the serving process."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "connhub.cli", "migrate"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no reason given"]
        raise StoreUnreachable(f"the store could not be migrated: {lines[-1].removeprefix('connhub: ')}")


def _key_ring(settings: Settings) -> KeyRing:
    """The key ring in force; a development key file that does not parse is a configuration error."""
    from connhub.bootstrap import load_key_ring
    from connhub.secrets import KeyRingError

    if settings.shared_store and not settings.encryption_keys:
        raise ConfigError(
            "CONNHUB_ENCRYPTION_KEYS is not set: a PostgreSQL store is shared, and a generated development key "
            "would be this host's alone"
        )
    try:
        return load_key_ring(settings)
    except KeyRingError as problem:
        raise ConfigError(f"the key file {settings.key_file.resolve()}: {problem}") from None
    except OSError as problem:
        raise ConfigError(f"the key file {settings.key_file.resolve()}: {problem.strerror or problem}") from None


def _store_description(settings: Settings) -> str:
    path = settings.sqlite_path
    return f"SQLite at {path}" if path is not None else redacted(settings.database_url)


def _http_protocol() -> Any:
    """uvicorn's httptools protocol with bounded request heads (connhub.api.protocol)."""
    try:
        from connhub.api.protocol import BoundedHeadProtocol
    except ImportError:  # uvicorn without httptools: its h11 protocol bounds head sizes itself
        return "auto"
    return BoundedHeadProtocol


def _export(settings: Settings) -> None:
    """Pass command-line overrides to child processes (workers, migrate), which read the environment."""
    import os

    os.environ["CONNHUB_HOST"] = settings.host
    os.environ["CONNHUB_PORT"] = str(settings.port)
    os.environ["CONNHUB_DATABASE_URL"] = settings.database_url
    os.environ["CONNHUB_LOG_LEVEL"] = settings.log_level
    os.environ["CONNHUB_LOG_FORMAT"] = settings.log_format


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _opening_store(url: str) -> Iterator[None]:
    """A store that does not open is StoreUnreachable: one line, the password never in it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except (DBAPIError, OSError) as error:
        reason = " ".join(str(getattr(error, "orig", None) or error).split())
        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
        raise StoreUnreachable(f"cannot use the store at {redacted(url)} (CONNHUB_DATABASE_URL): {reason}") from None


# -- migrate --------------------------------------------------------------------------------------


def migrate(args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from connhub.store.migrate import migrate as apply_migrations

    settings = _settings(args)
    with _opening_store(settings.database_url):
        try:
            apply_migrations(settings.database_url)
        except CommandError as problem:  # e.g. a store migrated by a newer connhub
            raise ConfigError(f"CONNHUB_DATABASE_URL: {' '.join(str(problem).split())}") from None
    print(f"store at {_store_description(settings)} is up to date")
    return 0


# -- keys -----------------------------------------------------------------------------------------


def generate_key(args: argparse.Namespace) -> int:
    from connhub.secrets import KeyRingError, new_key_entry

    try:
        print(new_key_entry(args.id, taken=_ring_in_force(_settings(args))))
    except KeyRingError as problem:
        raise ConfigError(f"--id: {problem}") from None
    return 0


def _ring_in_force(settings: Settings) -> list[str]:
    """The key ids a new key must not reuse: CONNHUB_ENCRYPTION_KEYS', else the development key file's."""
    if settings.encryption_keys or settings.key_file.exists():
        return _key_ring(settings).key_ids
    return []


def rotate_keys(args: argparse.Namespace) -> int:
    return asyncio.run(_rotate(_settings(args), args.batch_size))


async def _rotate(settings: Settings, batch_size: int) -> int:
    from connhub import bootstrap
    from connhub.audit import Acting, acting_as

    _key_ring(settings)
    core = bootstrap.build(settings)
    progress = RotationProgress(sys.stdout)
    try:
        with _opening_store(settings.database_url), acting_as(Acting(subject=_operator(), dialect="cli")):
            if differing := await core.service.key_mismatches():
                print(
                    "refusing to rotate: CONNHUB_ENCRYPTION_KEYS holds other bytes than the store knows for key "
                    "id(s) " + ", ".join(differing),
                    file=sys.stderr,
                )
                return 1
            to_move = await core.repository.key_id_counts()
            progress.start(sum(count for key_id, count in to_move.items() if key_id != core.key_ring.active_id))
            result = await core.service.rotate_keys(batch_size, progress.update)
    finally:
        await core.close()
    progress.finish(result)
    return 1 if result.unreadable else 0


def _operator() -> str | None:
    """Who runs a CLI command, for the audit trail: the login name, when the system knows it."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


class RotationProgress:
    """A counter updated in place on a terminal; plain lines, one per thousand or so, otherwise.

    Progress lines start with `progress:`, never `re-encrypted`: scripts read the final counts."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.on_terminal = bool(getattr(out, "isatty", lambda: False)())
        self.total = 0
        self._last_line = 0

    def start(self, total: int) -> None:
        self.total = total
        self.out.write(f"{total} secret(s) to re-encrypt\n")
        self.out.flush()

    def update(self, so_far: RotationResult) -> None:
        done = sum(so_far.resealed.values()) + sum(so_far.unreadable.values())
        if self.on_terminal:
            self.out.write(f"\rprogress: {done}/{self.total} secret(s)")
        elif done - self._last_line >= PLAIN_PROGRESS_EVERY or done == self.total:
            self._last_line = done
            self.out.write(f"progress: {done}/{self.total} secret(s)\n")
        self.out.flush()

    def finish(self, result: RotationResult) -> None:
        if self.on_terminal and self.total:
            self.out.write("\n")
        self.out.write(f"active key: {result.active_key_id}\n")
        if not result.resealed and not result.unreadable:
            self.out.write("every secret is already under the active key\n")
        for key_id, count in sorted(result.resealed.items()):
            self.out.write(f"re-encrypted {count} secret(s) from key {key_id}\n")
        for key_id, count in sorted(result.unreadable.items()):
            self.out.write(f"could not open {count} secret(s) under key {key_id} (not in CONNHUB_ENCRYPTION_KEYS)\n")
        self.out.flush()


PLAIN_PROGRESS_EVERY = 1000


if __name__ == "__main__":
    sys.exit(main())
