"""A local stand-in for the Anthropic Messages and OpenAI chat completions HTTP APIs.

Point the official SDKs at it (ANTHROPIC_BASE_URL=server.url, OPENAI_BASE_URL=server.openai_url)
and a whole deliberation completes: answers follow the TASK header of each prompt. `mode`
switches the behaviour while the server runs:

- "ok": realistic responses with usage, including prompt-cache counts;
- "auth_error": 401 whose message echoes the key sent, as some real APIs do;
- "server_error": 500 on every request (with a short retry-after so SDK retries are quick);
- "slow": waits `slow_seconds` before answering, to trigger client timeouts;
- "garbage": 200 responses whose text is unusable prose, to exercise the engine's fallbacks.

`fail_first=N` makes the first N requests fail with 500 whatever the mode (retry tests).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from deliberation.engine import prompts

logger = logging.getLogger(__name__)

MODES = ("ok", "auth_error", "server_error", "slow", "garbage")

_CANDIDATE = re.compile(r"^- ([a-z0-9_]+) \|", re.MULTILINE)
_TASK = re.compile(r"^TASK:\s*(\S+)", re.MULTILINE)
_PERSONA_NAME = re.compile(r"^You are ([^,\n]+),", re.MULTILINE)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    api: str  # "anthropic" or "openai"


@dataclass
class _Exchange:
    """What the fake needs from one request, whichever API shape it came in."""

    api: str
    model: str
    system: str
    prompt: str
    json_mode: bool
    key: str
    cache_requested: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


class FakeLLMServer:
    """Threaded HTTP server on 127.0.0.1 (random port); use as a context manager."""

    def __init__(
        self,
        mode: str = "ok",
        *,
        slow_seconds: float = 2.0,
        sub_problems: int = 1,
        fail_first: int = 0,
        convergence_score: float = 0.9,
    ) -> None:
        self.mode = mode
        self.slow_seconds = slow_seconds
        self.sub_problems = sub_problems
        self.fail_first = fail_first
        self.convergence_score = convergence_score
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._seen_systems: set[str] = set()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """Base URL for the Anthropic SDK (it appends /v1/messages)."""
        if self._server is None:
            raise RuntimeError("FakeLLMServer is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the OpenAI SDK (it appends /chat/completions)."""
        return f"{self.url}/v1"

    def start(self) -> FakeLLMServer:
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        # Slow handlers must not hold up stop().
        server.block_on_close = False
        self._server = server
        # A short poll interval keeps stop() quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._seen_systems.clear()

    # ----------------------------------------------------------------- behaviour

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests)

    def _cache_hit(self, system: str) -> bool:
        with self._lock:
            hit = system in self._seen_systems
            self._seen_systems.add(system)
            return hit

    def handle(
        self, api: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and extra headers for one request."""
        exchange = _exchange(api, body, headers)
        number = len(self.requests)
        if number <= self.fail_first or self.mode == "server_error":
            return (
                500,
                _error_body(api, "api_error", "Internal server error"),
                {"retry-after-ms": "10"},
            )
        if self.mode == "auth_error":
            message = f"Incorrect API key provided: {exchange.key}"
            kind = "authentication_error" if api == "anthropic" else "invalid_request_error"
            return 401, _error_body(api, kind, message, code="invalid_api_key"), {}
        if self.mode == "slow":
            self._stopping.wait(self.slow_seconds)
        if self.mode == "garbage":
            text = "Honestly, it depends. There are many factors to weigh here."
        else:
            text = self.answer(exchange)
        return 200, self._success_body(exchange, text), {}

    def answer(self, exchange: _Exchange) -> str:
        """The model text for a request, chosen by its TASK header."""
        match = _TASK.search(exchange.prompt)
        task = match.group(1) if match else ""
        prompt = exchange.prompt
        if task == prompts.TASK_DECOMPOSE:
            problem = exchange.system.split("PROBLEM:\n", 1)[-1].split("\n", 1)[0].strip()
            data: dict[str, Any] = {
                "sub_problems": [
                    {"goal": f"{problem} (part {n + 1})", "focus": "feasibility and value"}
                    for n in range(self.sub_problems)
                ],
                "clarification_question": "",
            }
        elif task == prompts.TASK_SELECT:
            codes = _CANDIDATE.findall(prompt)[:3]
            data = {"personas": [{"code": c, "rationale": "Relevant expertise."} for c in codes]}
        elif task in (prompts.TASK_CONTRIBUTE, prompts.TASK_MODERATE):
            name = _PERSONA_NAME.search(prompt)
            speaker = name.group(1) if name else "A member"
            return (
                f"{speaker} here. I support a phased approach: start small, measure the result "
                "and expand only if the numbers hold. What would we do if the pilot fails?"
            )
        elif task == prompts.TASK_FACILITATE:
            data = {"action": "continue", "moderator": None, "reasoning": "One more round helps."}
        elif task == prompts.TASK_CONVERGENCE:
            data = {"score": self.convergence_score, "reasoning": "Members broadly agree."}
        elif task == prompts.TASK_VOTE:
            data = {
                "recommendation": "Adopt the proposal in phases with a review after the pilot.",
                "confidence": 0.8,
                "conditions": ["The pilot meets its success criteria"],
                "reasoning": "It limits the downside.",
            }
        elif task == prompts.TASK_SYNTHESIZE:
            return (
                "## Executive summary\n\nThe board favours a phased adoption.\n\n"
                "## Recommendation\n\nAdopt the proposal in phases, reviewing after the pilot.\n\n"
                "## Rationale\n\n- A pilot limits the downside.\n\n"
                "## Dissenting views\n\nNone.\n\n"
                "## Risks\n\n- The pilot may be too small to be conclusive.\n\n"
                "## Open questions\n\n- What defines success for the pilot?\n"
            )
        elif task == prompts.TASK_META_SYNTHESIZE:
            return (
                "## Executive summary\n\nAll parts point to a phased approach.\n\n"
                "## Recommendation\n\nProceed in phases across all parts.\n\n"
                "## Prioritised actions\n\n1. Define the pilot.\n2. Run it.\n3. Review it.\n\n"
                "## Risks\n\n- Sequencing risk.\n\n"
                "## Open questions\n\n- Who owns the review?\n"
            )
        else:
            return "OK."
        encoded = json.dumps(data)
        # Claude tends to introduce JSON with a sentence and a fence; JSON mode on OpenAI does not.
        if exchange.api == "anthropic":
            return f"Here is my answer:\n```json\n{encoded}\n```"
        return encoded

    def _success_body(self, exchange: _Exchange, text: str) -> dict[str, Any]:
        system_tokens = _tokens(exchange.system)
        prompt_tokens = _tokens(exchange.prompt)
        output_tokens = _tokens(text)
        hit = self._cache_hit(exchange.system)
        if exchange.api == "anthropic":
            cache_read = system_tokens if exchange.cache_requested and hit else 0
            cache_write = system_tokens if exchange.cache_requested and not hit else 0
            uncached = prompt_tokens + (0 if exchange.cache_requested else system_tokens)
            return {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": exchange.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": uncached,
                    "output_tokens": output_tokens,
                    "cache_creation_input_tokens": cache_write,
                    "cache_read_input_tokens": cache_read,
                },
            }
        total_in = system_tokens + prompt_tokens
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": exchange.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": total_in,
                "completion_tokens": output_tokens,
                "total_tokens": total_in + output_tokens,
                "prompt_tokens_details": {"cached_tokens": system_tokens if hit else 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }


def _exchange(api: str, body: dict[str, Any], headers: dict[str, str]) -> _Exchange:
    if api == "anthropic":
        system_field = body.get("system", "")
        cache = isinstance(system_field, list) and any(
            isinstance(block, dict) and block.get("cache_control") for block in system_field
        )
        messages = body.get("messages") or [{}]
        return _Exchange(
            api=api,
            model=str(body.get("model", "")),
            system=_text_of(system_field),
            prompt=_text_of(messages[-1].get("content", "")),
            json_mode=False,
            key=headers.get("x-api-key") or _bearer(headers),
            cache_requested=cache,
        )
    messages = body.get("messages") or []
    system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
    prompt = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "user")
    return _Exchange(
        api=api,
        model=str(body.get("model", "")),
        system=system,
        prompt=prompt,
        json_mode=(body.get("response_format") or {}).get("type") == "json_object",
        key=_bearer(headers),
    )


def _bearer(headers: dict[str, str]) -> str:
    return headers.get("authorization", "").removeprefix("Bearer ").strip()


def _error_body(api: str, kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _make_handler(fake: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            headers = {key.lower(): value for key, value in self.headers.items()}
            path = self.path.split("?", 1)[0]
            if path.endswith("/messages"):
                api = "anthropic"
            elif path.endswith("/chat/completions"):
                api = "openai"
            else:
                self._send(404, {"error": {"message": f"No route for {path}"}}, {})
                return
            fake._record(RecordedRequest("POST", path, headers, body, api))
            status, payload, extra = fake.handle(api, body, headers)
            request_id = {"request-id" if api == "anthropic" else "x-request-id": uuid.uuid4().hex}
            self._send(status, payload, {**extra, **request_id})

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test); nothing is listening any more.
                pass

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("fake LLM: " + format, *args)

    return Handler
