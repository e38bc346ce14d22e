"""Exception types of flightdeck_rs."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs the package's start
if TYPE_CHECKING:
    from typing import Any

# pydantic_core, once looked for: the module, or False when it is not installed. Looked up
# on the first validation failure (or the first use of the public ``ValidationError`` name),
# never when flightdeck_rs is imported.
_PYDANTIC_CORE: Any = None


def pydantic_core_or_none() -> Any:
    """The ``pydantic_core`` module when pydantic is installed, else ``None`` (cached)."""
    global _PYDANTIC_CORE
    if _PYDANTIC_CORE is None:
        try:
            import pydantic_core
        except ImportError:
            _PYDANTIC_CORE = False
        else:
            _PYDANTIC_CORE = pydantic_core
    return _PYDANTIC_CORE or None


class _ValidationErrorType(type):
    """Lets ``isinstance``/``issubclass`` also accept pydantic's ``ValidationError``, which is
    what invalid data raises when pydantic is installed (it cannot be subclassed)."""

    def __instancecheck__(cls, obj: object) -> bool:
        return cls.__subclasscheck__(type(obj))

    def __subclasscheck__(cls, sub: type) -> bool:
        if type.__subclasscheck__(cls, sub):
            return True
        core = sys.modules.get("pydantic_core")
        return core is not None and issubclass(sub, core.ValidationError)


class ValidationError(ValueError, metaclass=_ValidationErrorType):
    """Raised when event data is invalid and pydantic is not installed; lists every failing
    field with its path.

    With pydantic installed, invalid data raises ``pydantic.ValidationError`` itself (with the
    same ``errors()`` as the reference models), and ``flightdeck_rs.ValidationError`` names
    that class, so ``except flightdeck_rs.ValidationError``, ``except
    pydantic.ValidationError`` and ``except ValueError`` all catch it.

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


def public_validation_error() -> type[ValueError]:
    """The class ``flightdeck_rs.ValidationError`` names: the one invalid data raises."""
    core = pydantic_core_or_none()
    if core is not None:
        cls: type[ValueError] = core.ValidationError
        return cls
    return ValidationError


def validation_error(
    message: str, title: str, errors: list[dict[str, Any]], input_type: str = "python"
) -> ValueError:
    """The exception for failed validation (called by the native module).

    pydantic's own ``ValidationError`` (its messages, ``url`` and ``str()``) when pydantic is
    installed, else ours with the same ``errors()``. ``input_type`` is ``"json"`` for JSON
    text (pydantic words a few messages differently for JSON input).
    """
    core = pydantic_core_or_none()
    if core is None:
        return ValidationError(message, title, errors)
    lines = []
    for e in errors:
        line = {"type": e["type"], "loc": e["loc"], "input": e["input"]}
        if "ctx" in e:
            line["ctx"] = e["ctx"]
        lines.append(line)
    try:
        exc: ValueError = core.ValidationError.from_exception_data(
            title, lines, input_type=input_type
        )
    except (KeyError, TypeError, ValueError):
        # An error type pydantic does not know: keep our message for it.
        for line, e in zip(lines, errors, strict=True):
            line["type"] = core.PydanticCustomError(str(e["type"]), str(e["msg"]))
            line.pop("ctx", None)
        exc = core.ValidationError.from_exception_data(title, lines, input_type=input_type)
    return exc


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
            "api_token must be printable ASCII: other characters cannot be sent in an HTTP header"
        )
