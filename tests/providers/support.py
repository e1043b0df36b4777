"""Shared test data: a catalog whose cards cover every structured-output style."""

from __future__ import annotations

from typing import Any

from tlm.catalog import Catalog

API_KEY = "sk-test-SECRETKEY0123456789abcdef"


def card(model_id: str, **overrides: Any) -> dict[str, Any]:
    """A catalog entry served by the fake servers."""
    base: dict[str, Any] = {
        "id": model_id,
        "provider": "fake",
        "api": "openai",
        "provider_model": f"wire-{model_id}",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "FAKE_API_KEY",
        "input_price_per_mtok": 2.0,
        "output_price_per_mtok": 8.0,
        "cached_input_price_per_mtok": 0.5,
        "context_window": 8192,
        "max_output_tokens": 512,
        "structured_output": "json_schema",
    }
    base.update(overrides)
    return base


def make_catalog() -> Catalog:
    """Cards: one per structured-output style, an embeddings model and an Anthropic model."""
    return Catalog.from_data(
        {
            "version": 1,
            "models": [
                card("m-schema"),
                card("m-object", structured_output="json_object"),
                card("m-llama", structured_output="json_object_schema"),
                card("m-none", structured_output="none"),
                card("m-embed", embeddings=True, input_price_per_mtok=0.02),
                card(
                    "claude",
                    provider="fake-anthropic",
                    api="anthropic",
                    base_url="http://127.0.0.1:9",
                    api_key_env="FAKE_ANTHROPIC_KEY",
                    input_price_per_mtok=3.0,
                    output_price_per_mtok=15.0,
                    cached_input_price_per_mtok=0.3,
                    max_output_tokens=1024,
                ),
                card(
                    "claude-plain",
                    provider="fake-anthropic",
                    api="anthropic",
                    base_url="http://127.0.0.1:9",
                    api_key_env="FAKE_ANTHROPIC_KEY",
                    structured_output="none",
                ),
            ],
        },
        source="test-catalog",
    )
