"""The offline judge endpoint: llama.cpp's OpenAI-compatible server on 127.0.0.1 serving a GGUF model.

``econ-eval serve-judge`` and the tests use :func:`start_llama_server`. The server comes from
``llama-cpp-python[server]`` (installed by the project's setup; built from source, ~8 min once).
A 135M judge only proves the plumbing; for real scores point ``--judge-base-url`` at a
GPT-4-class endpoint or a local vLLM / Ollama server of a strong model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .. import config


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A running llama.cpp server process; ``base_url`` is its OpenAI-compatible root (``.../v1``)."""

    def __init__(self, proc: subprocess.Popen, base_url: str, log_path: Path, alias: str):
        self.proc, self.base_url, self.log_path, self.alias = proc, base_url, log_path, alias

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def server_command(gguf: Path, *, port: int, threads: int, n_ctx: int, alias: str) -> list[str]:
    """The command line that starts llama-cpp-python's server bound to 127.0.0.1 only."""
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads), "--n_ctx", str(n_ctx),
            # queue concurrent requests instead of interrupting a running stream
            "--interrupt_requests", "false"]


def start_llama_server(model: str = config.DEFAULT_MODEL, *, port: int | None = None, threads: int | None = None,
                       n_ctx: int = 4096, ready_timeout: float = 120, log_path: Path | None = None) -> LlamaServer:
    """Start the llama.cpp server for a registered model (or a ``.gguf`` path) and wait until it answers."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("llama-cpp-python is not installed: run `make setup` (or "
                           "pip install 'llama-cpp-python[server]')") from exc
    from ..models import fetch_model, gguf_path

    if model.endswith(".gguf"):
        gguf, alias = Path(model), Path(model).stem
        if not gguf.is_file():
            raise FileNotFoundError(f"{gguf}: no such GGUF file")
    else:
        fetch_model(model, log=lambda m: print(m, file=sys.stderr))
        gguf, alias = gguf_path(model), model
    port = port or free_port()
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
    log_path = log_path or config.home_dir() / "logs" / f"llama-server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(server_command(gguf, port=port, threads=threads, n_ctx=n_ctx, alias=alias),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LlamaServer(proc, f"http://127.0.0.1:{port}/v1", log_path, alias)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(_died_message(server))
        try:
            with urllib.request.urlopen(server.base_url + "/models", timeout=2) as resp:
                if resp.status == 200 and json.load(resp).get("data"):
                    break
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        time.sleep(0.3)
    else:
        server.stop()
        raise TimeoutError(f"llama.cpp server not ready after {ready_timeout:.0f} s; log {log_path}:\n"
                           f"{server.log_tail()}")
    # /v1/models answers before the model has computed anything; a server built for another CPU (e.g.
    # -march=native on a host with AMX) dies only on its first completion. Ready = one real token.
    try:
        probe_completion(server.base_url, alias, timeout=max(deadline - time.monotonic(), 30))
    except (urllib.error.URLError, ConnectionError, OSError, ValueError) as exc:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(_died_message(server)) from exc
        server.stop()
        raise RuntimeError(f"llama.cpp server answered /v1/models but not a one-token chat completion ({exc}); "
                           f"log {log_path}:\n{server.log_tail()}") from exc
    return server


def probe_completion(base_url: str, model: str, *, timeout: float = 60) -> str:
    """One real one-token chat completion (what 'ready' means); returns the token's text."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say OK."}],
                       "max_tokens": 1, "temperature": 0}).encode()
    req = urllib.request.Request(base_url + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        doc = json.load(resp)
    return doc["choices"][0]["message"]["content"] or ""


def _died_message(server: LlamaServer) -> str:
    code = server.proc.returncode
    hint = (" (a crash: a llama.cpp build for another CPU? `make setup` builds it portably — see "
            "scripts/setup.sh)" if code is not None and code < 0 else "")
    return f"llama.cpp server exited with code {code}{hint}; log {server.log_path}:\n{server.log_tail()}"


@contextmanager
def llama_server(model: str = config.DEFAULT_MODEL, **kwargs):
    """Context manager around :func:`start_llama_server` that always stops the server."""
    server = start_llama_server(model, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def _cmd_serve_judge(args) -> int:
    import signal
    import time

    server = start_llama_server(args.model, port=args.port, threads=args.threads, n_ctx=args.n_ctx)
    print(f"llama.cpp server ready: base URL {server.base_url}  (model alias {server.alias!r}; log {server.log_path})")
    print(f"judge with: econ-eval judge RUN_DIR --judge-base-url {server.base_url} --judge-model {server.alias}")
    print("Ctrl-C stops it.", flush=True)
    def _stop(*_):
        raise KeyboardInterrupt

    # explicit handlers: a process started in the background inherits SIGINT as ignored
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while server.proc.poll() is None:
            time.sleep(0.5)
        print(f"server exited with code {server.proc.returncode}; log {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the server ...")
        return 0
    finally:
        server.stop()


def add_cli(sub) -> None:
    """The `econ-eval` subcommand(s) of this module (``cli.py`` assembles them)."""
    sj = sub.add_parser("serve-judge", help="serve the embedded GGUF with llama.cpp's OpenAI-compatible server on "
                        "127.0.0.1 (offline judge; a 135M judge only proves the plumbing)")
    sj.add_argument("--model", default=config.DEFAULT_MODEL, help="registered model or a .gguf path (default: %(default)s)")
    sj.add_argument("--port", type=int, default=8090, help="(default: %(default)s)")
    sj.add_argument("--threads", type=int, help="CPU threads (default: $OMP_NUM_THREADS or all cores)")
    sj.add_argument("--n-ctx", type=int, default=4096, help="context window (default: %(default)s)")
    sj.set_defaults(func=_cmd_serve_judge)
