"""Issue 15 item 5: keys shorter than 8 characters are redacted as whole tokens only."""

from __future__ import annotations

import pytest
from hostile import HostileProvider, Raise
from switchover import (
    ChainExhausted,
    Config,
    ProviderConfig,
    Request,
    RetryConfig,
    Runtime,
)
from switchover._core._redact import REDACTED, Redactor

pytestmark = pytest.mark.timeout(60)

HI = ({"role": "user", "content": "hi"},)


def test_ollamas_documented_key_with_a_provider_named_ollama_serves_requests() -> None:
    config = Config(
        providers=[
            ProviderConfig(
                name="ollama",
                api="openai",
                base_url="http://localhost:11434/v1",
                profiles={"default": "ollama"},
            )
        ],
        fallbacks=("ollama/llama3",),
    )
    with Runtime(config, providers={"ollama": HostileProvider()}) as rt:
        done = rt.complete(Request(model="ollama/llama3.2", messages=HI))
        assert done.text == "hello"
        assert done.served_by.model == "ollama/llama3.2"
        assert "ollama/llama3" in rt.health()
        names = [a.name for a in rt.inspect().actors]
        assert "profile:ollama/default" in names


def test_a_one_letter_key_does_not_garble_messages() -> None:
    redact = Redactor(["e"])
    text = "the model is overloaded; retry later"
    assert redact(text) == text
    assert redact.known("openai/gpt-e") == "openai/gpt-e"
    assert redact("key: e") == f"key: {REDACTED}"
    assert redact('{"api_key": "e"}') == f'{{"api_key": "{REDACTED}"}}'
    assert redact("Bearer e") == f"Bearer {REDACTED}"


def test_a_short_key_in_a_provider_message_is_still_removed() -> None:
    def plan(call: object) -> Raise:
        return Raise(lambda: RuntimeError("rejected key ollama for ollama/llama3"), "open")

    config = Config(
        providers=[
            ProviderConfig(
                name="ollama",
                api="openai",
                base_url="http://localhost:11434/v1",
                profiles={"default": "ollama"},
            )
        ],
        retry=RetryConfig(attempts=1),
    )
    with (
        Runtime(config, providers={"ollama": HostileProvider(plan)}) as rt,
        pytest.raises(ChainExhausted) as caught,
    ):
        rt.complete(Request(model="ollama/llama3", messages=HI))
    assert "ollama/llama3" in str(caught.value)


def test_a_long_key_in_a_model_name_is_still_rejected() -> None:
    key = "sk-proj-LongEnoughKeyToMatter42"
    config = Config(
        providers=[ProviderConfig(name="p", api="openai", base_url="http://x", profiles={"a": key})]
    )
    with (
        Runtime(config, providers={"p": HostileProvider()}) as rt,
        pytest.raises(Exception, match="contains a configured API key"),
    ):
        rt.complete(Request(model=f"p/{key}", messages=HI))


def test_redaction_of_whole_tokens_table() -> None:
    redact = Redactor(["ab1"])
    cases = {
        "ab1": REDACTED,
        "x ab1 y": f"x {REDACTED} y",
        "key=ab1&z": f"key={REDACTED}&z",
        "xab1": "xab1",
        "ab1x": "ab1x",
        "p/ab1": "p/ab1",
        "ab1-2": "ab1-2",
    }
    assert {text: redact(text) for text in cases} == cases
