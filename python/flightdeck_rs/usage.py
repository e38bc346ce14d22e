"""Token usage from LLM SDK response objects, by duck typing (no SDK is imported).

:func:`read_usage` maps the public field names of each provider's response to
``RunEvent.usage.model`` fields. The server prices ``input_tokens`` and ``cached_input_tokens``
separately and adds the two, so ``input_tokens`` here never includes the cached tokens:

- OpenAI chat completion (and a stream's last chunk, which carries the usage):
  input = ``usage.prompt_tokens`` - cached, output = ``usage.completion_tokens``,
  cached = ``usage.prompt_tokens_details.cached_tokens``; provider ``openai``.
- OpenAI Responses API: input = ``usage.input_tokens`` - cached, output =
  ``usage.output_tokens``, cached = ``usage.input_tokens_details.cached_tokens``.
- Anthropic message: input = ``usage.input_tokens`` + ``usage.cache_creation_input_tokens``,
  output = ``usage.output_tokens``, cached = ``usage.cache_read_input_tokens``; provider
  ``anthropic``.
- LangChain ``LLMResult``: each generation's ``message.usage_metadata`` (input =
  ``input_tokens`` - ``input_token_details.cache_read``, output = ``output_tokens``, cached =
  ``cache_read``), model from the message's ``response_metadata`` (``model_name`` or
  ``model``), provider from its ``model_provider`` or the model name; without usage metadata,
  ``llm_output["token_usage"]`` (OpenAI names) or ``llm_output["usage"]`` (Anthropic names).

Reasoning tokens are part of the output counts in both OpenAI APIs and are priced as output.
Anthropic bills cache writes above the base input price; with no field for them in a
``RunEvent`` they are counted as input tokens (priced at the base input price).
Objects may be SDK models or the same shapes as dicts (``response.model_dump()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["ModelUsage", "UnreadableUsage", "read_usage"]


class ModelUsage(NamedTuple):
    """One model's tokens, as ``RunEvent.usage.model`` holds them."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0


class UnreadableUsage(ValueError):
    """The object is not a response shape :func:`read_usage` knows, or it reports tokens
    without a model name."""


_MISSING = object()


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _has(obj: Any, name: str) -> bool:
    if isinstance(obj, Mapping):
        return name in obj
    return getattr(obj, name, _MISSING) is not _MISSING


def _int(v: Any) -> int:
    """A token count: ``None`` (field absent or null) is 0; anything else must be an int."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            v = int(v)
        except (TypeError, ValueError) as e:
            raise UnreadableUsage(f"token count {v!r} is not an integer") from e
    if v < 0:
        raise UnreadableUsage(f"token count {v} is negative")
    n: int = v
    return n


def _name(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _openai_chat(usage: Any) -> tuple[int, int, int]:
    prompt = _int(_get(usage, "prompt_tokens"))
    cached = _int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
    return max(prompt - cached, 0), _int(_get(usage, "completion_tokens")), min(cached, prompt)


def _openai_responses(usage: Any) -> tuple[int, int, int]:
    inp = _int(_get(usage, "input_tokens"))
    cached = _int(_get(_get(usage, "input_tokens_details"), "cached_tokens"))
    return max(inp - cached, 0), _int(_get(usage, "output_tokens")), min(cached, inp)


def _anthropic(usage: Any) -> tuple[int, int, int]:
    inp = _int(_get(usage, "input_tokens")) + _int(_get(usage, "cache_creation_input_tokens"))
    return inp, _int(_get(usage, "output_tokens")), _int(_get(usage, "cache_read_input_tokens"))


def _provider_from_model(model: str | None) -> str:
    m = (model or "").lower()
    if m.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci")):
        return "openai"
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith("gemini"):
        return "google"
    return "unknown"


def _one(
    provider: str | None,
    model: str | None,
    tokens: tuple[int, int, int],
    what: str,
) -> list[ModelUsage]:
    if model is None:
        if tokens == (0, 0, 0):
            return []
        raise UnreadableUsage(f"{what} reports tokens but no model name (pass model=)")
    return [ModelUsage(provider or _provider_from_model(model), model, *tokens)]


def _langchain(result: Any, provider: str | None, model: str | None) -> list[ModelUsage]:
    out: dict[tuple[str, str], list[int]] = {}
    llm_output = _get(result, "llm_output") or {}
    fallback_model = _name(_get(llm_output, "model_name")) or _name(_get(llm_output, "model"))
    found = False
    for batch in _get(result, "generations") or ():
        # LLMResult nests a list per prompt; a ChatResult's list is flat.
        flat = _has(batch, "message") or _has(batch, "text")
        for gen in (batch,) if flat else batch or ():
            message = _get(gen, "message")
            meta = _get(message, "usage_metadata")
            if meta is None:
                continue
            found = True
            rmeta = _get(message, "response_metadata") or {}
            name = (
                model
                or _name(_get(rmeta, "model_name"))
                or _name(_get(rmeta, "model"))
                or fallback_model
            )
            inp = _int(_get(meta, "input_tokens"))
            cache_read = _int(_get(_get(meta, "input_token_details"), "cache_read"))
            tokens = (max(inp - cache_read, 0), _int(_get(meta, "output_tokens")), cache_read)
            if name is None:
                if tokens == (0, 0, 0):
                    continue
                raise UnreadableUsage("LangChain generation reports tokens but no model name")
            prov = (
                provider
                or _name(_get(rmeta, "model_provider"))
                or _name(_get(rmeta, "ls_provider"))
                or _provider_from_model(name)
            )
            acc = out.setdefault((prov, name), [0, 0, 0])
            for k in range(3):
                acc[k] += tokens[k]
    if found:
        return [ModelUsage(p, m, *t) for (p, m), t in out.items()]
    name = model or fallback_model
    token_usage = _get(llm_output, "token_usage")
    if token_usage is not None:  # ChatOpenAI's llm_output
        return _one(provider or "openai", name, _openai_chat(token_usage), "LangChain llm_output")
    usage = _get(llm_output, "usage")
    if usage is not None:  # ChatAnthropic's llm_output
        if _has(usage, "prompt_tokens"):
            tokens = _openai_chat(usage)
        else:
            tokens = _anthropic(usage)
        return _one(provider, name, tokens, "LangChain llm_output")
    return []


def read_usage(
    response: object, *, provider: str | None = None, model: str | None = None
) -> list[ModelUsage]:
    """The model usage a response reports (empty when it carries none, e.g. a stream chunk
    before the last).

    Args:
        response: An OpenAI ``ChatCompletion`` / ``ChatCompletionChunk`` / ``Response``, an
            Anthropic ``Message``, a LangChain ``LLMResult``, or the same as a dict.
        provider: Overrides the provider (default: from the response's shape, or for
            LangChain from ``model_provider`` or the model name).
        model: Overrides the model name.

    Raises:
        UnreadableUsage: an unknown shape, a bad token count, or tokens without a model name.
    """
    if _has(response, "generations") and _has(response, "llm_output"):
        return _langchain(response, provider, model)
    if not _has(response, "usage"):
        raise UnreadableUsage(
            f"a {type(response).__name__} has no usage (expected an OpenAI chat completion or "
            "Responses object, an Anthropic message or a LangChain LLMResult)"
        )
    usage = _get(response, "usage")
    name = model or _name(_get(response, "model"))
    if usage is None:
        return []
    kind = _get(response, "object")
    if kind in ("chat.completion", "chat.completion.chunk") or _has(usage, "prompt_tokens"):
        return _one(provider or "openai", name, _openai_chat(usage), "OpenAI chat completion")
    if kind == "response" or _has(usage, "input_tokens_details"):
        return _one(provider or "openai", name, _openai_responses(usage), "OpenAI response")
    if _get(response, "type") == "message" or _has(usage, "input_tokens"):
        return _one(provider or "anthropic", name, _anthropic(usage), "Anthropic message")
    raise UnreadableUsage(f"a {type(response).__name__} has a usage of unknown shape")
