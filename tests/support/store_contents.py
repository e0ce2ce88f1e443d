"""What a connhub store holds, as raw bytes, for tests that hunt secrets or canaries in it."""

from __future__ import annotations

from pathlib import Path

import psycopg


def store_bytes(url: str) -> bytes:
    """Every byte the store holds: the SQLite database with its WAL, or every row of our tables as text
    on PostgreSQL (secret ciphertexts also as their raw bytes)."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(part.read_bytes() for part in path.parent.glob(path.name + "*"))
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT row_to_json(c)::text FROM connections c UNION ALL "
            "SELECT row_to_json(s)::text || encode(s.ciphertext, 'escape') FROM connection_secrets s UNION ALL "
            "SELECT row_to_json(i)::text FROM idempotency_keys i"
        ).fetchall()
    return "\n".join(row[0] for row in rows).encode()
