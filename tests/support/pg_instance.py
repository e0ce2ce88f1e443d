"""A throw-away PostgreSQL server for tests that must change how a server behaves (password auth,
TLS, client certificates) without touching the machine's shared one.

    with start_postgres(tmp_path, ssl=True) as pg:
        pg.execute("CREATE ROLE alice LOGIN PASSWORD 's3cret'")
        ... connect to 127.0.0.1:pg.port, verify TLS with pg.ca.cert_pem ...

Over TCP it asks for scram-sha-256 passwords (user `postgres`, password `pg.password`); over its
own unix socket it trusts, which is how `execute` administers it. With ssl=True it serves a
certificate for `localhost` only (so verify-full via 127.0.0.1 fails) issued by `pg.ca`, and
trusts client certificates from that CA for the roles named in `cert_users`.

The server runs as the `postgres` OS user when the tests run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg

from tests.support.pki import CertificateAuthority
from tests.support.servers import free_port

PG_BIN = Path(os.environ.get("CONNHUB_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER_PASSWORD = "throwaway-superuser-pw"


# --- the server ------------------------------------------------------------------------------


class PostgresInstance:
    """A running throw-away server; `stop()`/`start()` take it down and up on the same port."""

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, base: Path, ssl: bool, cert_users: Sequence[str]) -> None:
        self.base = base
        self.data = base / "data"
        self.socket_dir = base / "socket"
        self.log = base / "server.log"
        self.password = SUPERUSER_PASSWORD
        self.ca: CertificateAuthority | None = CertificateAuthority() if ssl else None
        self.port = free_port()
        self._run_as = _server_os_user()
        self._init(cert_users)

    # Lifecycle

    def start(self) -> None:
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.log))

    def stop(self) -> None:
        self._pg_ctl("stop", "-w", "-t", "30", "-m", "fast")

    def destroy(self) -> None:
        """Stop (if running) and delete every file."""
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresInstance:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()

    # Use

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser session over the trusted unix socket."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.user, dbname=dbname, autocommit=True
        )

    def execute(self, *statements: str, dbname: str = "postgres") -> None:
        """Run each statement in its own autocommit transaction (so CREATE DATABASE works)."""
        with self.connect(dbname) as conn:
            for sql in statements:
                conn.execute(sql.encode())

    # Setup

    def _init(self, cert_users: Sequence[str]) -> None:
        for directory in (self.data, self.socket_dir):
            directory.mkdir(mode=0o700)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._give_away(self.base, self.data, self.socket_dir, pwfile)
        self._run(
            PG_BIN / "initdb", "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "max_connections": "50",
        }
        hba = ["local all all trust"]
        if self.ca is not None:
            settings.update(self._write_tls_files())
            hba += [f"hostssl all {user} 127.0.0.1/32 cert" for user in cert_users]
        hba.append("host all all 127.0.0.1/32 scram-sha-256")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        (self.data / "pg_hba.conf").write_text("\n".join(hba) + "\n")

    def _write_tls_files(self) -> dict[str, str]:
        assert self.ca is not None
        server = self.ca.issue(["localhost"])
        files = {"server.crt": server.cert_pem, "server.key": server.key_pem, "ca.crt": self.ca.cert_pem}
        for name, text in files.items():
            path = self.data / name
            path.write_text(text)
            path.chmod(0o600)
            self._give_away(path)
        return {
            "ssl": "on",
            "ssl_cert_file": "'server.crt'",
            "ssl_key_file": "'server.key'",
            "ssl_ca_file": "'ca.crt'",
        }

    def _pg_ctl(self, *args: str) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), *args)

    def _run(self, program: Path, *args: str) -> None:
        command = [str(program), *args]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as.pw_name, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}{log}")

    def _give_away(self, *paths: Path) -> None:
        if self._run_as is not None:
            for path in paths:
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)


def _server_os_user() -> pwd.struct_passwd | None:
    """Who runs the server: `postgres` when we are root, else ourselves (None)."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def _reachable_by(path: Path, user: pwd.struct_passwd | None) -> bool:
    """Whether `user` can traverse every directory down to `path` (pytest's tmp dirs are 0700)."""
    if user is None:
        return True
    for directory in (path, *path.parents):
        info = directory.stat()
        if info.st_uid != user.pw_uid and not info.st_mode & stat.S_IXOTH:
            return False
    return True


def start_postgres(tmpdir: Path, ssl: bool, cert_users: Sequence[str] = ()) -> PostgresInstance:
    """initdb and start a server on a free 127.0.0.1 port; use as a context manager to clean up.

    Its files live under `tmpdir` when the server's OS user can reach it, else in a private
    directory of the system temp dir (removed by `destroy`).
    """
    parent = tmpdir if _reachable_by(tmpdir, _server_os_user()) else None
    base = Path(tempfile.mkdtemp(prefix="connhub-pg-", dir=parent))
    base.chmod(0o700)
    instance = PostgresInstance(base, ssl, cert_users)
    try:
        instance.start()
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return instance
