"""An OpenAI-compatible chat client for judging and annotating: cache, retries, budget, JSON output.

Works with any endpoint the ``openai`` client can talk to (OpenAI, vLLM, Ollama, the llama.cpp
server of ``econ-eval serve-judge``). ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` are respected.

- Cache: every accepted reply is stored in SQLite under ``$ECON_EVAL_HOME/judge_cache.sqlite``, keyed by
  (endpoint, judge model, prompt version, messages, output schema); a re-run costs no calls. Failures and
  replies the caller rejects (e.g. unparseable judgements) are never cached, so they are asked again.
- Retries: timeouts, connection errors, 429 and 5xx are retried with exponential backoff.
- Fail fast: after ``max_connection_errors`` connection errors in a row the endpoint is taken as down and
  every further call raises :class:`EndpointUnreachable` at once (no minutes of retries per sample).
- Budget: ``max_calls`` caps the HTTP requests (retries included); past it, :class:`BudgetExhausted`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .. import config

#: How structured output is requested.
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "none")


class BudgetExhausted(RuntimeError):
    """The call budget (``max_calls``) is spent; nothing more is sent."""


class EndpointUnreachable(RuntimeError):
    """The endpoint refused or dropped several connections in a row; nothing more is sent to it."""


@dataclass
class ChatReply:
    content: str | None
    cached: bool
    error: str | None = None


class ReplyCache:
    """A thread-safe on-disk cache of chat replies (SQLite: atomic, survives interruptions)."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else config.home_dir() / "judge_cache.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, "
                             "prompt_version TEXT, content TEXT, created REAL)")

    @staticmethod
    def key(model: str, prompt_version: str, messages: list[dict], schema: dict | None, endpoint: str = "") -> str:
        """Cache key: the endpoint (see :func:`endpoint_id`), model, prompt version, messages and schema."""
        blob = json.dumps({"endpoint": endpoint, "model": model, "prompt_version": prompt_version,
                           "messages": messages, "schema": schema}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT content FROM replies WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, model: str, prompt_version: str, content: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
                             (key, model, prompt_version, content, time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def default_base_url() -> str:
    return os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")


def base_url_host(base_url: str) -> str:
    """Host[:port] of a base URL: what results files record (never the key, never a path with tokens)."""
    parsed = urlparse(base_url)
    if not parsed.hostname:
        return "?"
    return f"{parsed.hostname}:{parsed.port}" if parsed.port else parsed.hostname


def endpoint_id(base_url: str) -> str:
    """The endpoint as the cache knows it: scheme, host, port and path (no credentials, no query)."""
    parsed = urlparse(base_url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.hostname or ''}{port}{parsed.path.rstrip('/')}"


def _is_local(base_url: str) -> bool:
    return urlparse(base_url).hostname in {"127.0.0.1", "localhost", "::1"}


class ChatClient:
    """Cached, retrying, budgeted chat completions against one OpenAI-compatible endpoint."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 response_format: str = "auto", timeout: float = 120.0, retries: int = 3, backoff: float = 0.5,
                 max_calls: int | None = None, max_tokens: int = 256, temperature: float = 0.0,
                 cache: ReplyCache | None = None, max_connection_errors: int = 3):
        import openai

        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format {response_format!r}: choose one of {RESPONSE_FORMATS}")
        if max_calls is not None and max_calls < 0:
            raise ValueError(f"max_calls must be 0 or more, got {max_calls}")
        if retries < 0 or timeout <= 0 or max_tokens < 1 or max_connection_errors < 1:
            raise ValueError("retries must be >= 0, timeout > 0, max_tokens >= 1 and max_connection_errors >= 1")
        self.model = model
        self.base_url = base_url or default_base_url()
        key = api_key or os.environ.get("OPENAI_API_KEY") or ("not-needed" if _is_local(self.base_url) else None)
        if not key:
            raise ValueError(f"no API key for {base_url_host(self.base_url)}: set OPENAI_API_KEY, or point "
                             "--judge-base-url at a local server (econ-eval serve-judge)")
        # our own retry loop (below) does the backoff, so the client's is off
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=0)
        if response_format == "auto":  # llama.cpp takes the schema inside json_object; OpenAI wants json_schema
            response_format = "json_object" if _is_local(self.base_url) else "json_schema"
        self.response_format = response_format
        self.retries, self.backoff = retries, backoff
        self.max_calls, self.max_tokens, self.temperature = max_calls, max_tokens, temperature
        self.cache = cache if cache is not None else ReplyCache()
        self._lock = threading.Lock()
        self.calls = 0          # HTTP requests sent (retries included)
        self.cache_hits = 0
        self.endpoint = endpoint_id(self.base_url)
        self.max_connection_errors = max_connection_errors
        self._connection_errors_in_a_row = 0
        self.unreachable: str | None = None  # set once the endpoint is taken as down

    # ------------------------------------------------------------------ public
    @property
    def budget_left(self) -> int | None:
        return None if self.max_calls is None else max(self.max_calls - self.calls, 0)

    def chat(self, messages: list[dict], *, prompt_version: str, schema: dict | None = None,
             accept=None) -> ChatReply:
        """One reply for ``messages`` (from the cache when possible).

        Only replies for which ``accept(content)`` is true (default: any content) are cached. Raises
        :class:`BudgetExhausted` past the budget and :class:`EndpointUnreachable` once the endpoint is down.
        """
        key = ReplyCache.key(self.model, prompt_version, messages, schema, self.endpoint)
        hit = self.cache.get(key)
        if hit is not None and (accept is None or accept(hit)):
            with self._lock:
                self.cache_hits += 1
            return ChatReply(hit, cached=True)
        content, error = self._request(messages, schema)
        if content is not None and (accept is None or accept(content)):
            self.cache.put(key, self.model, prompt_version, content)
        return ChatReply(content, cached=False, error=error)

    # ------------------------------------------------------------------ internals
    def _take_call(self) -> None:
        with self._lock:
            if self.unreachable:
                raise EndpointUnreachable(self.unreachable)
            if self.max_calls is not None and self.calls >= self.max_calls:
                raise BudgetExhausted(f"call budget of {self.max_calls} spent")
            self.calls += 1

    def _request_kwargs(self, messages: list[dict], schema: dict | None) -> dict:
        kwargs = {"model": self.model, "messages": messages, "temperature": self.temperature,
                  "max_tokens": self.max_tokens}
        if schema is not None and self.response_format == "json_schema":
            strict_schema = dict(schema, additionalProperties=False)
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": strict_schema, "strict": True}}
        elif schema is not None and self.response_format == "json_object":
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        return kwargs

    def _request(self, messages: list[dict], schema: dict | None) -> tuple[str | None, str | None]:
        import openai

        kwargs = self._request_kwargs(messages, schema)
        error = None
        for attempt in range(self.retries + 1):
            self._take_call()
            try:
                resp = self._client.chat.completions.create(**kwargs)
                self._connection_ok()
                content = resp.choices[0].message.content if resp.choices else None
                if content is None:
                    return None, "empty reply"
                return content, None
            except openai.APIConnectionError as exc:  # refused, reset or timed out (APITimeoutError is one)
                error = f"{type(exc).__name__}: {exc}"
                self._connection_failed(error)
            except (openai.RateLimitError, openai.InternalServerError) as exc:
                self._connection_ok()
                error = f"{type(exc).__name__}: {exc}"
            except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
                self._connection_ok()
                return None, f"HTTP {exc.status_code}: {exc.message}"
            except (ValueError, json.JSONDecodeError) as exc:  # a server that returns garbage
                error = f"bad response: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff * (2 ** attempt))
        return None, error

    def _connection_ok(self) -> None:
        with self._lock:
            self._connection_errors_in_a_row = 0

    def _connection_failed(self, error: str) -> None:
        with self._lock:
            self._connection_errors_in_a_row += 1
            if self._connection_errors_in_a_row >= self.max_connection_errors and not self.unreachable:
                self.unreachable = (f"endpoint {self.base_url} unreachable: {self._connection_errors_in_a_row} "
                                    f"connection errors in a row (last: {error}). Is the server running? Start "
                                    "the local one with `econ-eval serve-judge`, or check --judge-base-url.")
        if self.unreachable:
            raise EndpointUnreachable(self.unreachable)
