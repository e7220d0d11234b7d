"""Database URLs (validated, masked for display), connections, and whole databases created and dropped.

A database per test (rather than a schema or a rolled-back transaction) lets tests exercise real commits,
concurrent connections and migrations exactly as production does, while staying isolated.

URLs hold passwords, and psycopg's own errors echo the conninfo they could not parse, so every URL the
product shows goes through :func:`mask_url`, and connections are opened with :func:`connect`, which refuses
malformed URLs before psycopg sees them and rewrites connection errors without the password.

SQLAlchemy spellings (``postgresql+psycopg2://``, ``postgresql+psycopg://``) are converted rather than
refused: users copy them from other tools, and both consumers of the URL need the plain libpq form
(psycopg 3 cannot parse a ``+driver`` scheme; dagster-postgres hands the URL to SQLAlchemy, whose default
``postgresql`` driver is psycopg2).  ``postgres://`` becomes ``postgresql://`` too, since SQLAlchemy
rejects it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = [
    "DATABASE_URL_ENV",
    "DatabaseConnectionError",
    "DatabaseUrlError",
    "connect",
    "create_database",
    "drop_database",
    "mask_url",
    "normalize_database_url",
    "scrub_secrets",
    "with_database",
]

#: The variable users set; named in every error about the URL so they know what to fix.
DATABASE_URL_ENV = "STRAVA_PIPELINE_DATABASE_URL"
MASK = "***"
_SCHEMES = ("postgresql", "postgres")
_EXAMPLE = "postgresql://user:password@host:5432/dbname"
_USE_EMBEDDED = f"or unset {DATABASE_URL_ENV} to use the embedded server"

_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")
_KV_PASSWORD = re.compile(r"(?i)\b((?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|\S+)")
# Any "scheme://user:secret@" inside free text (e.g. an exception message quoting a URL).
_URL_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\"']*:)[^\s\"']*@")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class DatabaseUrlError(ValueError):
    """The database URL is malformed; the message names the variable and shows the URL masked."""


class DatabaseConnectionError(psycopg.OperationalError):
    """Connecting failed; the message is psycopg's with every password spelling removed.

    A subclass of :class:`psycopg.OperationalError`, so callers that handle an unreachable server keep
    working.
    """


def _split_userinfo(rest: str) -> tuple[str, str] | None:
    """Split ``rest`` (the URL after ``://``) into (userinfo, remainder starting at '@'), or None.

    The last '@' wins, so a password with a raw '@' is masked whole; but an '@' whose "user" part holds a
    '/', '?' or '#' is in the path or query, and only the authority (up to the first of those) counts.
    """
    at = rest.rfind("@")
    if at == -1:
        return None
    if re.search(r"[/?#]", rest[:at].split(":", 1)[0]):
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        at = authority.rfind("@")
        if at == -1:
            return None
    return rest[:at], rest[at:]


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (userinfo, ``?password=``, or ``password=`` conninfo).

    Works on malformed input too (it never parses strictly), since that is exactly what error messages show.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _KV_PASSWORD.sub(rf"\g<1>{MASK}", url)
    split = _split_userinfo(rest)
    if split is not None:
        userinfo, remainder = split
        if ":" in userinfo:
            rest = f"{userinfo.split(':', 1)[0]}:{MASK}{remainder}"
    return _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", f"{scheme}://{rest}")


def _passwords(url: str) -> set[str]:
    """Every spelling of the passwords in ``url`` (as written and percent-decoded), to scrub from text."""
    found: set[str] = set()
    _, sep, rest = url.partition("://")
    if sep:
        split = _split_userinfo(rest)
        if split is not None and ":" in split[0]:
            found.add(split[0].split(":", 1)[1])
        found.update(m.group(0).split("=", 1)[1] for m in _QUERY_PASSWORD.finditer(url))
    else:
        found.update(m.group(0).split("=", 1)[1].strip().strip("'") for m in _KV_PASSWORD.finditer(url))
    found |= {unquote(p) for p in found}
    return {p for p in found if p}


def scrub_secrets(text: str, url: str) -> str:
    """``text`` (e.g. a psycopg error) with ``url`` shown masked and its password removed in any spelling."""
    for secret in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = text.replace(url, mask_url(url))
    return _URL_IN_TEXT.sub(rf"\g<1>{MASK}@", text)


def _invalid(variable: str, url: str, problem: str, fix: str) -> DatabaseUrlError:
    return DatabaseUrlError(f"{variable} is not a valid PostgreSQL URL: {problem} (got {mask_url(url)}). {fix}")


def _check_hosts(variable: str, url: str, hostinfo: str) -> None:
    """Each ``host[:port]`` of a (possibly multi-host) authority has a numeric port in range."""
    for entry in hostinfo.split(","):
        port = ""
        if entry.startswith("["):
            close = entry.find("]")
            if close == -1:
                raise _invalid(variable, url, "an IPv6 host has no closing ']'", "Write it as [::1]:5432.")
            tail = entry[close + 1 :]
            if tail and not tail.startswith(":"):
                raise _invalid(variable, url, f"unexpected {tail!r} after an IPv6 host", "Write it as [::1]:5432.")
            port = tail[1:]
        elif ":" in entry:
            port = entry.rsplit(":", 1)[1]
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise _invalid(
                variable, url, f"the port {port!r} is not a number from 1 to 65535",
                f"Give a numeric port (PostgreSQL's default is 5432) or leave it out, {_USE_EMBEDDED}.",
            )


def normalize_database_url(url: str, *, variable: str = DATABASE_URL_ENV) -> str:
    """Check ``url`` before anything connects with it; return it as a plain ``postgresql://`` libpq URL.

    Raises :class:`DatabaseUrlError` (a ``ValueError``) naming ``variable``, what is wrong and the fix, with
    the password masked: psycopg's parse errors would otherwise print the URL, password included, and a raw
    '@' in the password makes libpq show the password's tail as the host name.
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _invalid(variable, text, "it is not a URL", f"Set it to a URL like {_EXAMPLE}, {_USE_EMBEDDED}.")
    base, plus, driver = scheme.lower().partition("+")
    if base not in _SCHEMES or (plus and not re.fullmatch(r"[a-z0-9_]+", driver)):
        raise _invalid(
            variable, text, f"the scheme {scheme!r} is not postgresql:// or postgres://",
            f"Point it at a PostgreSQL server with a URL like {_EXAMPLE}, {_USE_EMBEDDED}.",
        )
    if _BAD_PERCENT.search(text):
        raise _invalid(
            variable, text, "a '%' is not followed by two hex digits",
            "Percent-encode special characters of the user name and password (a literal '%' is %25, '@' is %40).",
        )
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    userinfo, _, hostinfo = authority.rpartition("@")
    if "@" in userinfo:
        raise _invalid(
            variable, text, "the user name or password contains a raw '@'",
            "Percent-encode it as %40 (e.g. postgresql://user:p%40ss@host/db).",
        )
    if "@" in rest[len(authority) :]:
        raise _invalid(
            variable, text, "an '@' follows the host part, so the password probably holds a raw '/' or '?'",
            "Percent-encode special characters of the password ('/' is %2F, '?' is %3F, '@' is %40).",
        )
    _check_hosts(variable, text, hostinfo)
    return f"postgresql://{rest}"


def connect(url: str, *, variable: str = DATABASE_URL_ENV, **kwargs: Any) -> psycopg.Connection[Any]:
    """``psycopg.connect`` for a product URL: validated first, and failures raised without the password.

    The chained psycopg error is suppressed (``from None``) because Python would print its unscrubbed
    message under the traceback.
    """
    plain = normalize_database_url(url, variable=variable)
    try:
        return psycopg.connect(plain, **kwargs)
    except psycopg.Error as exc:
        reason = scrub_secrets(str(exc).strip(), plain)
        raise DatabaseConnectionError(
            f"cannot connect to the PostgreSQL server of {variable} ({mask_url(plain)}): {reason}\n"
            f"Check that the server is running and reachable from here and that the user name, password and "
            f"database are right, {_USE_EMBEDDED}."
        ) from None


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` instead (host, socket, user and options kept)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"expected a postgresql:// URL, got {mask_url(url)}")
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server behind ``url`` and return a URL for it.

    CREATE DATABASE cannot run inside a transaction, hence the autocommit connection.
    """
    with connect(url, autocommit=True) as conn:
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
    with connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
