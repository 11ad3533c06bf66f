"""The provider contract: request/message shapes, streamed events, errors.

Every model backend (OpenAI-compatible, Anthropic, the scripted stand-in) turns one `ModelRequest`
into an async stream of `ProviderEvent`s. Activities consume it with
`async with contextlib.aclosing(provider.stream(request)) as events:` so that leaving the block
(or cancelling the activity) closes the HTTP stream at once.

Event order, for every provider: `TextDelta`s as the text arrives, then each `ToolCallRequest`
when its arguments are complete, then exactly one `UsageReport` at the end of a successful stream.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, Field

# A tool call crosses into the run's workflow, so its one definition is the contract's.
from deeployd.agents.contract import ToolCall
from deeployd.registry import Registry


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)  # role="assistant" only
    tool_call_id: str | None = None  # role="tool" only: which call this is the result of


class ToolSpec(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object


class ModelRequest(BaseModel):
    provider: str
    model: str
    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    base_url: str | None = None  # None: the provider's public endpoint
    api_key: str | None = None  # resolved by the caller (secret store / env), never logged
    options: dict[str, Any] = Field(default_factory=dict)  # provider-specific, see each provider


class TextDelta(BaseModel):
    kind: Literal["text"] = "text"
    text: str


class ToolCallRequest(BaseModel):
    kind: Literal["tool_call"] = "tool_call"
    call: ToolCall


class UsageReport(BaseModel):
    kind: Literal["usage"] = "usage"
    prompt_tokens: int
    completion_tokens: int
    # True when the backend reported no usage and the counts are estimated (≈ 4 chars a token).
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


ProviderEvent = TextDelta | ToolCallRequest | UsageReport


class ProviderError(Exception):
    """A model call failed. `retryable` tells the activity whether Temporal should retry.

    Codes: `auth` (bad/missing key, never retried), `rate_limit`, `server_error`, `connection`,
    `timeout`, `stream_error` (retryable); `bad_request`, `not_found`, `config` (not retryable).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> Any:  # keep the fields when pickled (e.g. across processes)
        return (
            _rebuild_provider_error,
            (self.message, self.code, self.retryable, self.status, self.retry_after_s),
        )

    def __repr__(self) -> str:
        return f"ProviderError(code={self.code!r}, retryable={self.retryable}, message={self.message!r})"


def _rebuild_provider_error(
    message: str, code: str, retryable: bool, status: int | None, retry_after_s: float | None
) -> ProviderError:
    return ProviderError(
        message, code=code, retryable=retryable, status=status, retry_after_s=retry_after_s
    )


@runtime_checkable
class ModelProvider(Protocol):
    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """Stream one model call. Closing the iterator aborts the underlying HTTP stream."""
        ...


@dataclass(frozen=True)
class PlatformKey:
    """Where a provider takes the platform's own API key from when an agent names none, and
    the only endpoint that key is ever sent to."""

    env: str  # e.g. OPENAI_API_KEY (used without settings)
    setting: str  # the Settings field holding it, e.g. openai_api_key
    base_url: str


# Every provider by name (the agents API validates `provider` against it). Each provider module
# registers itself with `@registered`; the package's `__init__` imports the built-ins.
PROVIDERS: Registry[ModelProvider] = Registry("provider")

ProviderClass = TypeVar("ProviderClass", bound=type)


def registered(cls: ProviderClass) -> ProviderClass:
    """Class decorator: file one instance of the provider under its `name`."""
    instance = cls()
    PROVIDERS.add(instance.name, instance)
    return cls


# --- helpers shared by the providers ---------------------------------------------------------


def parse_tool_arguments(raw: str) -> dict[str, Any]:
    """Streamed argument text -> dict; anything that is not a JSON object is kept as `_raw`."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def estimate_tokens(text: str) -> int:
    """A rough token count (≈ 4 characters a token) for backends that report no usage."""
    return math.ceil(len(text) / 4) if text else 0


def retry_after_seconds(headers: Any) -> float | None:
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


_TRANSPORT_MODULES = ("httpx", "httpcore", "h11", "h2", "anyio", "ssl")


# Bound what a misbehaving server can make us buffer for one call's tool arguments.
MAX_TOOL_ARGUMENT_CHARS = 1_000_000


def add_argument_chars(provider: str, buffered: int, fragment: str) -> int:
    """`buffered` plus the fragment: the tool-argument text one call has buffered so far; a
    ProviderError (not retried) once it passes MAX_TOOL_ARGUMENT_CHARS."""
    buffered += len(fragment)
    if buffered > MAX_TOOL_ARGUMENT_CHARS:
        raise ProviderError(
            f"{provider}: tool call arguments exceed {MAX_TOOL_ARGUMENT_CHARS} characters",
            code="bad_request",
            retryable=False,
        )
    return buffered


@contextlib.contextmanager
def provider_errors(sdk: Any, provider: str, sdk_error: type[BaseException]) -> Iterator[None]:
    """An SDK's errors, and a connection broken mid-stream, as ProviderError (which says whether
    Temporal should retry). Wraps the whole streamed call, yields included."""
    try:
        yield
    except ProviderError:
        raise
    except sdk_error as exc:
        raise map_sdk_error(exc, sdk, provider) from exc
    except Exception as exc:
        if is_transport_error(exc):  # the connection broke mid-stream
            raise ProviderError(
                f"{provider}: connection lost: {exc!r}", code="connection", retryable=True
            ) from exc
        raise


def is_transport_error(exc: BaseException) -> bool:
    """A network failure surfacing raw from the HTTP stack (the SDKs wrap only some of them)."""
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError) or module.startswith(_TRANSPORT_MODULES)


def map_sdk_error(exc: BaseException, sdk: Any, provider: str) -> ProviderError:
    """Map an official SDK's exception (openai / anthropic share the same hierarchy) to ours."""
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError(f"{provider}: request timed out", code="timeout", retryable=True)
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError(
            f"{provider}: cannot connect: {exc}", code="connection", retryable=True
        )
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        message = f"{provider}: HTTP {status}: {_error_message(exc)}"
        retry_after = retry_after_seconds(getattr(exc.response, "headers", None))
        if status < 400:  # an error event inside a 200 stream (e.g. Anthropic's overloaded_error)
            return ProviderError(
                f"{provider}: stream error: {_error_message(exc)}",
                code="stream_error",
                retryable=True,
            )
        if status in (401, 403):
            return ProviderError(message, code="auth", retryable=False, status=status)
        if status == 429:
            return ProviderError(
                message, code="rate_limit", retryable=True, status=status, retry_after_s=retry_after
            )
        if status in (408, 409) or status >= 500:
            return ProviderError(
                message,
                code="server_error",
                retryable=True,
                status=status,
                retry_after_s=retry_after,
            )
        if status == 404:
            return ProviderError(message, code="not_found", retryable=False, status=status)
        return ProviderError(message, code="bad_request", retryable=False, status=status)
    if isinstance(exc, sdk.APIError):  # an error event in the middle of the stream
        return ProviderError(
            f"{provider}: stream error: {exc}", code="stream_error", retryable=True
        )
    return ProviderError(f"{provider}: {exc}", code="stream_error", retryable=True)


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return str(getattr(exc, "message", exc))


def import_sdk(module: str, requirement: str) -> Any:
    """Import a provider's SDK lazily, with a clear error naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - the SDKs are declared dependencies
        raise ProviderError(
            f"the {module!r} package is not installed: pip install '{requirement}'",
            code="config",
            retryable=False,
        ) from exc
