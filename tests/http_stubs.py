"""Tiny OpenAI-compatible endpoints for failure tests (a real judge server is tested in test_judge.py)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


def chat_completion(content: str, model: str = "stub") -> bytes:
    """The body of a well-formed chat completion whose reply is ``content``."""
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}).encode()


class StubHandler(BaseHTTPRequestHandler):
    """Answers every POST with ``self.body()`` as JSON; subclasses say what the body is."""

    def body(self) -> bytes:
        raise NotImplementedError

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = self.body()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
