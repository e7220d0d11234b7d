"""Errors raised while turning raw Strava payloads into typed rows."""

from __future__ import annotations


class PayloadError(ValueError):
    """A raw payload does not have the shape the typed layer needs.

    The message always names the entity (e.g. ``activity 1234``) and the field, because the raw layer
    keeps the payload and a user must be able to find and inspect exactly the record that failed.
    """

    def __init__(self, entity: str, field: str, problem: str) -> None:
        self.entity = entity
        self.field = field
        self.problem = problem
        super().__init__(f"{entity}: field {field!r} {problem}")
