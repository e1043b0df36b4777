"""The redaction rules one by one: masking by name and by value, excerpts, keys, messages."""

from __future__ import annotations

import json
import random

import pytest

from tlm.json_schema import SchemaValidator
from tlm.providers.errors import scrub
from tlm.telemetry.redact import REDACTED, Redaction, path_is_redacted

SECRET = "TOPSECRET-7f3a9c@x.com"


def test_values_of_redacted_fields_are_masked_everywhere_in_every_form() -> None:
    scope = Redaction(fields={"email"}).for_input({"email": SECRET, "n": 7})
    tricky = Redaction(fields={"email"}).for_input({"email": 'quo"te\nline ü'})
    cleaned = scope.value({"email": SECRET, "note": f"mail {SECRET}!", SECRET: [SECRET]})
    assert cleaned == {"email": REDACTED, "note": f"mail {REDACTED}!", REDACTED: [REDACTED]}
    assert tricky.text(json.dumps({"x": 'quo"te\nline ü'})) == '{"x": "[REDACTED]"}'
    assert tricky.text(repr('quo"te\nline ü')) == f"'{REDACTED}'"
    cut = SECRET[:15] + "…"  # an excerpt cut short keeps only the start of the value
    assert scope.text(f"value: {cut}") == f"value: {REDACTED}…"


def test_short_values_are_masked_only_whole() -> None:
    scope = Redaction(fields={"age"}).for_input({"age": 42, "code": "ab"})
    assert scope.value({"age": 42, "other": 42, "text": "42 is 42", "list": [42.0]}) == {
        "age": REDACTED,
        "other": REDACTED,
        "text": "42 is 42",
        "list": [REDACTED],
    }
    nested = Redaction(fields={"address"}).for_input({"address": {"street": "Main Road 12"}})
    assert nested.text("lives at Main Road 12") == f"lives at {REDACTED}"
    assert nested.text("street") == "street"  # keys inside a redacted object are not secrets


def test_schema_messages_leave_redacted_values_out() -> None:
    validator = SchemaValidator(
        {
            "type": "object",
            "properties": {"email": {"type": "string", "pattern": "@"}, "n": {"type": "integer"}},
            "not": {"required": ["forbidden"]},
        }
    )
    problems = validator.problems(
        {"email": "NOAT-SECRET", "n": "x", "forbidden": 1}, redact={"email"}
    )
    text = "\n".join(str(p) for p in problems)
    assert "NOAT-SECRET" not in text
    assert "$.email: [REDACTED] does not match '@'" in text
    assert "$.n: 'x' is not of type 'integer'" in text  # other fields keep their values
    wrong_type = validator.problems({"email": ["in", "a", "list"]}, redact={"email"})
    assert [p.message for p in wrong_type] == ["[REDACTED] is not of type 'string'"]


def test_json_paths_through_redacted_fields() -> None:
    fields = {"email", "weird key"}
    assert path_is_redacted("$.email", fields)
    assert path_is_redacted("$.contacts[3].email", fields)
    assert path_is_redacted("$['weird key'][0]", fields)
    assert path_is_redacted("email", fields)
    assert not path_is_redacted("$.emails", fields)
    assert not path_is_redacted("$", fields)


def test_the_fast_path_agrees_with_the_key_scrubber() -> None:
    rng = random.Random(12)
    alphabet = "skpryeKSbarBEAR- _12345\u017f\u212a\n.*"
    plain = Redaction()
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert plain.text(text) == scrub(text), repr(text)
    for text in ("BeArEr abcdefghij", "x\u212aEY-abcd", "\u017fK-abcdef", "SESS-abcd", "-sk-abcd"):
        assert plain.text(text) == scrub(text), repr(text)
    keyed = Redaction(secrets=["configured-value-1"])
    assert keyed.text("x configured-value-1 y") == "x *** y"
    assert keyed.text("x configured-value-1 y") == scrub(
        "x configured-value-1 y", ["configured-value-1"]
    )


def test_json_stays_valid_and_masks_keys() -> None:
    plain = Redaction(secrets=["zz-secret-0001"])
    value = {"a": "bearer abcdefghij", "b": ["sk-abcdefgh1234", 3], "c": 'q"zz-secret-0001'}
    text = plain.json(value)
    assert json.loads(text) == {"a": "***", "b": ["***", 3], "c": 'q"***'}
    assert plain.holds_value(value)
    assert not plain.holds_value({"a": "nothing to see", "n": 1})


def test_a_fixed_text_is_scanned_once_and_masked_like_any_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tlm.telemetry.redact as redact_module

    scans: list[str] = []
    real = redact_module._scrub_fast

    def counting(text: str, secrets: tuple[str, ...]) -> str:
        scans.append(text)
        return real(text, secrets)

    monkeypatch.setattr(redact_module, "_scrub_fast", counting)
    engine = Redaction(fields={"email"}, secrets=("hunter2-secret",))
    system = "Reply in JSON. Key: sk-proj-abcdefgh1234, secret hunter2-secret."
    first = engine.fixed_text(system)
    assert first == engine.text(system)
    assert "sk-proj-abcdefgh1234" not in first
    assert "hunter2-secret" not in first
    scans.clear()
    for _ in range(3):
        assert engine.fixed_text(system) == first
    assert scans == []  # remembered: no second scan of the same text
    # an execution whose input holds a redacted value masks it in the fixed text too
    scope = engine.for_input({"email": SECRET})
    assert scope.fixed_text(f"write to {SECRET}") == f"write to {REDACTED}"
    assert engine.fixed_text(f"write to {SECRET}") == f"write to {SECRET}"
    # many distinct texts: still the right answer for each
    for i in range(200):
        assert engine.fixed_text(f"text {i} sk-{i:08d}") == f"text {i} ***"
