"""Exception types of flightdeck_rs."""

from __future__ import annotations

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs the package's start
if TYPE_CHECKING:
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


def check_api_token(api_token: object) -> None:
    """Rejects a token that could never authenticate, before anything is sent.

    The message never contains the token itself.
    """
    if api_token is None:
        return
    if not isinstance(api_token, str):
        raise TypeError(f"api_token must be a str or None, got {type(api_token).__name__}")
    if api_token != api_token.strip():
        raise ValueError(
            "api_token has leading or trailing whitespace; the server strips its own "
            "token, so this one would never match (strip it before passing it)"
        )
    if not all(" " <= ch <= "~" for ch in api_token):
        raise ValueError(
            "api_token must be printable ASCII: other characters cannot be sent in an "
            "HTTP header"
        )
