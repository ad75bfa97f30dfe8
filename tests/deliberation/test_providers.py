"""Tests of the Anthropic and OpenAI providers through their official SDKs, against a fake API."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from deliberation.engine import (
    Deliberation,
    Provider,
    ProviderError,
    completion_cost,
    make_provider,
)
from deliberation.engine.providers.base import scrub_secrets

from .fake_llm import FakeLLMServer

SECRET = "sk-test-0123456789abcdefSECRET"
PROBLEM = "Should we replace our on-premise ticketing system with a hosted service this year?"
SDK_PROVIDERS = ("anthropic", "openai")


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # The SDKs read keys, base URLs and profiles from the environment; tests pass them explicitly.
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))


def provider_for(name: str, server: FakeLLMServer, **kwargs: Any) -> Provider:
    base_url = server.url if name == "anthropic" else server.openai_url
    kwargs.setdefault("api_key", SECRET)
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    return make_provider(name, base_url=base_url, **kwargs)


def ask(provider: Provider, *, json_mode: bool = False, system: str = "You advise.") -> Any:
    return provider.complete(
        role="persona",
        system=system,
        prompt="TASK: vote\nGive your vote.",
        max_tokens=200,
        json_mode=json_mode,
    )


# --------------------------------------------------------------------------- anthropic


def test_anthropic_sends_a_cacheable_system_block_and_reports_usage(fake: FakeLLMServer) -> None:
    provider = provider_for("anthropic", fake)
    system = "You are a careful adviser. " * 40
    first = ask(provider, system=system, json_mode=True)
    request = fake.requests[0]
    assert request.path == "/v1/messages"
    # Recent SDK releases send the key as a bearer token, older ones as x-api-key.
    authorization = request.headers.get("authorization", "").removeprefix("Bearer ")
    assert (request.headers.get("x-api-key") or authorization) == SECRET
    assert request.body["model"] == "claude-sonnet-4-6"
    assert request.body["max_tokens"] == 200
    assert request.body["system"] == [
        {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
    ]
    assert request.body["messages"][0]["role"] == "user"
    assert '"recommendation"' in first.text
    assert first.cache_write_tokens > 0 and first.cached_tokens == 0

    second = ask(provider, system=system, json_mode=True)
    assert second.cached_tokens == first.cache_write_tokens
    assert second.input_tokens == first.input_tokens
    assert completion_cost(second) < completion_cost(first)


def test_anthropic_usage_becomes_cost_at_list_prices(fake: FakeLLMServer) -> None:
    completion = ask(provider_for("anthropic", fake))
    assert completion.model == "claude-sonnet-4-6"
    expected = (
        Decimal(completion.input_tokens - completion.cache_write_tokens) * Decimal("3.00")
        + Decimal(completion.cache_write_tokens) * Decimal("3.00") * Decimal("1.25")
        + Decimal(completion.output_tokens) * Decimal("15.00")
    ) / Decimal(1_000_000)
    assert completion_cost(completion) == expected.quantize(Decimal("0.000001"))
    assert completion_cost(completion) > 0


# --------------------------------------------------------------------------- openai


def test_openai_asks_for_a_json_object_only_in_json_mode(fake: FakeLLMServer) -> None:
    provider = provider_for("openai", fake)
    answer = ask(provider, json_mode=True)
    ask(provider, json_mode=False)
    json_request, text_request = fake.requests
    assert json_request.path == "/v1/chat/completions"
    assert json_request.headers["authorization"] == f"Bearer {SECRET}"
    assert json_request.body["response_format"] == {"type": "json_object"}
    assert "response_format" not in text_request.body
    assert [m["role"] for m in json_request.body["messages"]] == ["system", "user"]
    assert json_request.body["model"] == "gpt-4o"
    assert answer.text.startswith("{")


def test_openai_usage_with_cached_prompt_tokens_becomes_cost(fake: FakeLLMServer) -> None:
    provider = provider_for("openai", fake)
    first = ask(provider)
    second = ask(provider)
    assert first.cached_tokens == 0 and second.cached_tokens > 0
    expected = (
        Decimal(second.input_tokens - second.cached_tokens) * Decimal("2.50")
        + Decimal(second.cached_tokens) * Decimal("1.25")
        + Decimal(second.output_tokens) * Decimal("10.00")
    ) / Decimal(1_000_000)
    assert completion_cost(second) == expected.quantize(Decimal("0.000001"))


def test_role_models_can_be_overridden(fake: FakeLLMServer) -> None:
    provider = provider_for("openai", fake, models={"persona": "llama3.1:8b"})
    completion = ask(provider)
    assert fake.requests[0].body["model"] == "llama3.1:8b"
    # Self-hosted models have no list price.
    assert completion_cost(completion) == Decimal("0")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", SDK_PROVIDERS)
def test_a_rejected_key_is_an_auth_error_that_never_shows_the_key(
    fake: FakeLLMServer, name: str
) -> None:
    fake.mode = "auth_error"
    with pytest.raises(ProviderError) as caught:
        ask(provider_for(name, fake, max_retries=2))
    error = caught.value
    assert error.code == "auth"
    assert "401" in error.message
    assert SECRET not in error.message and SECRET not in str(error)
    assert "[redacted]" in error.message
    # Authentication failures are not retried.
    assert len(fake.requests) == 1


@pytest.mark.parametrize("name", SDK_PROVIDERS)
def test_a_persistent_server_error_is_retried_then_reported(fake: FakeLLMServer, name: str) -> None:
    fake.mode = "server_error"
    with pytest.raises(ProviderError) as caught:
        ask(provider_for(name, fake, max_retries=2))
    assert caught.value.code == "provider_error"
    assert "500" in caught.value.message
    assert len(fake.requests) == 3


@pytest.mark.parametrize("name", SDK_PROVIDERS)
def test_a_transient_server_error_is_absorbed_by_retries(fake: FakeLLMServer, name: str) -> None:
    fake.fail_first = 1
    completion = ask(provider_for(name, fake, max_retries=2))
    assert completion.text
    assert len(fake.requests) == 2


@pytest.mark.parametrize("name", SDK_PROVIDERS)
def test_a_slow_answer_is_a_timeout(fake: FakeLLMServer, name: str) -> None:
    fake.mode = "slow"
    fake.slow_seconds = 3.0
    with pytest.raises(ProviderError) as caught:
        ask(provider_for(name, fake, timeout=0.3))
    assert caught.value.code == "timeout"


@pytest.mark.parametrize("name", SDK_PROVIDERS)
def test_an_unreachable_server_is_a_provider_error(name: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}" + ("/v1" if name == "openai" else "")
    provider = make_provider(name, api_key=SECRET, base_url=base_url, max_retries=0, timeout=2)
    with pytest.raises(ProviderError) as caught:
        ask(provider)
    assert caught.value.code in {"provider_error", "timeout"}
    assert SECRET not in caught.value.message


def test_openai_without_any_key_is_an_auth_error() -> None:
    provider = make_provider("openai")
    with pytest.raises(ProviderError) as caught:
        ask(provider)
    assert caught.value.code == "auth"


def test_anthropic_without_any_key_is_an_auth_error(fake: FakeLLMServer) -> None:
    provider = make_provider("anthropic", base_url=fake.url, max_retries=0)
    with pytest.raises(ProviderError) as caught:
        ask(provider)
    assert caught.value.code == "auth"
    assert fake.requests == []


def test_provider_errors_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(ProviderError("timeout", "slow")))
    assert (error.code, error.message, str(error)) == ("timeout", "slow", "timeout: slow")


def test_scrubbing_removes_configured_and_key_shaped_secrets() -> None:
    text = f"bad key {SECRET} and sk-ant-api03-abcdefghijklmnop and my-own-token-123"
    scrubbed = scrub_secrets(text, ["my-own-token-123", None, ""])
    assert SECRET not in scrubbed
    assert "sk-ant" not in scrubbed and "my-own-token-123" not in scrubbed
    assert scrubbed.startswith("bad key [redacted]")


# --------------------------------------------------------------------------- whole deliberations


class CollectingHost:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.checkpoints: list[dict[str, Any]] = []

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append((event_type, data))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoints.append(state)

    def should_stop(self) -> str | None:
        return None


@pytest.mark.parametrize("name", SDK_PROVIDERS)
def test_a_whole_deliberation_completes_through_each_sdk(fake: FakeLLMServer, name: str) -> None:
    fake.sub_problems = 2
    host = CollectingHost()
    outcome = Deliberation(
        problem_statement=PROBLEM,
        problem_context={"team": "12 support agents"},
        provider=provider_for(name, fake),
        host=host,
        max_rounds=3,
    ).run()
    assert outcome.status == "completed"
    assert outcome.stop_reason == "consensus"
    types = [event_type for event_type, _ in host.events]
    assert types[-1] == "complete"
    assert types.count("synthesis_complete") == 3
    assert outcome.final_recommendation == "Proceed in phases across all parts."
    assert len(fake.requests) == host.checkpoints[-1]["calls"]
    assert outcome.total_cost > 0
    assert outcome.total_tokens > 0


def test_unusable_answers_from_a_real_sdk_still_complete_the_deliberation(
    fake: FakeLLMServer,
) -> None:
    fake.mode = "garbage"
    host = CollectingHost()
    outcome = Deliberation(
        problem_statement=PROBLEM,
        problem_context={},
        provider=provider_for("anthropic", fake),
        host=host,
        max_rounds=2,
    ).run()
    assert outcome.status == "completed"
    assert outcome.stop_reason == "max_rounds"
    assert "## Recommendation" in outcome.synthesis_text
