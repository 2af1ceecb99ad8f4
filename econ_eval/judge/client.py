"""An OpenAI-compatible chat client for judging and annotating: cache, retries, budget, JSON output.

Works with any endpoint the ``openai`` client can talk to (OpenAI, vLLM, Ollama, the llama.cpp
server of ``econ-eval serve-judge``). ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` are respected.

- Cache: every successful reply is stored in SQLite under ``$ECON_EVAL_HOME/judge_cache.sqlite``,
  keyed by (judge model, prompt version, messages, output schema); a re-run costs no calls.
- Retries: timeouts, connection errors, 429 and 5xx are retried with exponential backoff.
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
    def key(model: str, prompt_version: str, messages: list[dict], schema: dict | None) -> str:
        blob = json.dumps({"model": model, "prompt_version": prompt_version, "messages": messages,
                           "schema": schema}, sort_keys=True, ensure_ascii=False)
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


def _is_local(base_url: str) -> bool:
    return urlparse(base_url).hostname in {"127.0.0.1", "localhost", "::1"}


class ChatClient:
    """Cached, retrying, budgeted chat completions against one OpenAI-compatible endpoint."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 response_format: str = "auto", timeout: float = 120.0, retries: int = 3, backoff: float = 0.5,
                 max_calls: int | None = None, max_tokens: int = 256, temperature: float = 0.0,
                 cache: ReplyCache | None = None):
        import openai

        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format {response_format!r}: choose one of {RESPONSE_FORMATS}")
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

    # ------------------------------------------------------------------ public
    @property
    def budget_left(self) -> int | None:
        return None if self.max_calls is None else max(self.max_calls - self.calls, 0)

    def chat(self, messages: list[dict], *, prompt_version: str, schema: dict | None = None) -> ChatReply:
        """One reply for ``messages`` (from the cache when possible). Raises :class:`BudgetExhausted`."""
        key = ReplyCache.key(self.model, prompt_version, messages, schema)
        hit = self.cache.get(key)
        if hit is not None:
            with self._lock:
                self.cache_hits += 1
            return ChatReply(hit, cached=True)
        content, error = self._request(messages, schema)
        if content is not None:
            self.cache.put(key, self.model, prompt_version, content)
        return ChatReply(content, cached=False, error=error)

    # ------------------------------------------------------------------ internals
    def _take_call(self) -> None:
        with self._lock:
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
                content = resp.choices[0].message.content if resp.choices else None
                if content is None:
                    return None, "empty reply"
                return content, None
            except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                    openai.InternalServerError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
                return None, f"HTTP {exc.status_code}: {exc.message}"
            except (ValueError, json.JSONDecodeError) as exc:  # a server that returns garbage
                error = f"bad response: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff * (2 ** attempt))
        return None, error
