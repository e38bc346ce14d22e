"""Exception types of flightdeck_rs."""

from __future__ import annotations

from typing import Any


class ValidationError(ValueError):
    """Raised when event data is invalid; lists every failing field with its path.

    It is a ``ValueError`` subclass, like ``pydantic.ValidationError``, and offers the same
    ``errors()`` / ``error_count()`` / ``title`` accessors.
    """

    def __init__(self, message: str, title: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self._title = title
        self._errors = errors

    @property
    def title(self) -> str:
        """The model that failed validation, e.g. ``"RunEvent"``."""
        return self._title

    def errors(self) -> list[dict[str, Any]]:
        """One dict per failure: ``type``, ``loc`` (tuple), ``msg``, ``input`` and ``ctx``."""
        return [dict(e) for e in self._errors]

    def error_count(self) -> int:
        """How many failures were found."""
        return len(self._errors)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self._title, self._errors))
