"""The athlete and their gear from the archive's ``profile.csv``, ``bikes.csv`` and ``shoes.csv``.

Without API access these are the only source of the ``athlete`` and ``gear`` tables. They become
documents in the API's own shapes (an ``/athlete`` profile, ``/gear/{id}`` items), so the one typed
transform serves both. The archive names gear but gives it no id: ids are ``b-archive-<n>`` for bikes
and ``g-archive-<n>`` for shoes (Strava prefixes bike ids with ``b`` and shoe ids with ``g``), in file order.
"""

from __future__ import annotations

import csv
import io
from typing import Any

__all__ = ["gear_documents", "profile_document"]


def _rows(data: bytes | None) -> list[dict[str, str]]:
    if not data:
        return []
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def profile_document(profile_csv: bytes | None) -> dict[str, Any] | None:
    """The athlete as a ``/athlete``-shaped document, or None when the file is absent or has no athlete id."""
    rows = _rows(profile_csv)
    if not rows or _number(rows[0].get("athlete id")) is None:
        return None
    row = rows[0]
    return {
        "id": _number(row.get("athlete id")),
        "firstname": row.get("first name") or None,
        "lastname": row.get("last name") or None,
        "sex": row.get("sex") or None,
        "city": row.get("city") or None,
        "state": row.get("state") or None,
        "country": row.get("country") or None,
    }


def gear_documents(bikes_csv: bytes | None, shoes_csv: bytes | None) -> list[dict[str, Any]]:
    """Bikes and shoes as ``/gear/{id}``-shaped documents (name, brand, model)."""
    documents = []
    for prefix, kind, data in (("b", "bike", bikes_csv), ("g", "shoe", shoes_csv)):
        for i, row in enumerate(_rows(data), start=1):
            name = row.get(f"{kind} name")
            if not name:
                continue
            documents.append({"id": f"{prefix}-archive-{i}", "name": name, "brand_name": row.get(f"{kind} brand"),
                              "model_name": row.get(f"{kind} model"), "resource_state": 3})
    return documents
