"""Create and drop whole databases on a server, e.g. one throw-away database per test.

A database per test (rather than a schema or a rolled-back transaction) lets tests exercise real commits,
concurrent connections and migrations exactly as production does, while staying isolated.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = ["create_database", "drop_database", "with_database"]


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` instead (host, socket, user and options kept)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"expected a postgresql:// URL, got {url!r}")
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server behind ``url`` and return a URL for it.

    CREATE DATABASE cannot run inside a transaction, hence the autocommit connection.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting any sessions still using it (``WITH (FORCE)``).

    ``url`` may point at any database on the server except ``name`` itself; if it does point at ``name``
    we connect to the ``postgres`` maintenance database instead, since a session cannot drop its own db.
    """
    target = url
    if unquote(urlsplit(url).path.lstrip("/")) == name:
        target = with_database(url, "postgres")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
