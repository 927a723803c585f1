"""Script: which step answers a call."""

from __future__ import annotations

import pytest
from switchover.testing._script import Reply, Script


def test_the_most_specific_script_wins() -> None:
    script: Script[str, None] = Script("default")
    script.script(None, "any")
    script.script("m", "model")
    script.script(None, "key", key="k")
    script.script("m", "model and key", key="k")
    assert script.next("m", "k", None) == "model and key"
    assert script.next("m", "other", None) == "model"
    assert script.next("x", "k", None) == "key"
    assert script.next("x", "other", None) == "any"


def test_steps_are_taken_in_order_and_the_last_repeats() -> None:
    script: Script[str, None] = Script("default")
    script.script("m", "a", "b")
    assert [script.next("m", "k", None) for _ in range(4)] == ["a", "b", "b", "b"]


def test_the_rule_decides_what_no_script_matches() -> None:
    script: Script[str, str] = Script("default")
    script.rule(lambda call: "ruled" if call == "hot" else None)
    script.script("scripted", "script")
    assert script.next("m", "k", "hot") == "ruled"
    assert script.next("m", "k", "cold") == "default"
    assert script.next("scripted", "k", "hot") == "script"
    script.clear()
    assert script.next("scripted", "k", "hot") == "default"


def test_a_script_needs_steps() -> None:
    with pytest.raises(ValueError, match="at least one step"):
        Script("default").script("m")


def test_reply_pieces() -> None:
    assert Reply("abcdefg", chunks=3).pieces() == ["abc", "def", "g"]
    assert Reply("ab", chunks=5).pieces() == ["a", "b"]
    assert Reply("", chunks=3).pieces() == []
