"""One record per verification method: registering one record is all a new method needs.

A method registered here in a test is accepted by the definition schema and converter, checked
with located errors, built by the factory (alone and inside a chain, ordered by its cost rank),
run by the engine, and ranked by cold start; removing it makes it unknown everywhere again. The
built-in tables (schema enum, ``VERIFICATION_METHODS``, error messages) are derived from the
registry.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.engine.conftest import MODELS, ScriptedModels, base_task, catalog_data, reply
from tlm.catalog import Catalog
from tlm.definition.loader import load_definition, parse_definition
from tlm.definition.model import VERIFICATION_METHODS, TaskDefinition
from tlm.definition.registry import DefinitionRegistry
from tlm.definition.schema import task_definition_schema
from tlm.definition.serde import make_converter
from tlm.engine import Engine, EngineConfig
from tlm.errors import ConfigurationError, DefinitionError, TaskSchemaError, VerificationFailed
from tlm.learn.coldstart import TaskHistory, VerificationPolicy
from tlm.verify.base import Verdict, VerificationContext, Verifier
from tlm.verify.chain import ChainVerifier
from tlm.verify.factory import create_verifier, order_cheapest_first
from tlm.verify.methods import (
    METHODS,
    BuildContext,
    MethodRegistry,
    VerificationMethod,
    calls_out,
    cost_rank,
    voters_ahead,
)
from tlm.verify.params import (
    ChainParams,
    ConsensusParams,
    ExternalParams,
    HumanParams,
    NoParams,
    VerificationSpec,
)


@attrs.frozen
class KeywordParams:
    """The output must mention a word."""

    word: str
    field: str = "title"


@attrs.define
class KeywordVerifier:
    params: KeywordParams
    method: str = "keyword"

    async def verify(self, context: VerificationContext, /) -> Verdict:
        text = str(context.primary.output.get(self.params.field, ""))
        found = self.params.word.lower() in text.lower()
        return Verdict(passed=found, confidence=1.0, method=self.method, details={"word": found})


def build_keyword(params: KeywordParams, context: BuildContext) -> Verifier:
    return KeywordVerifier(params)


KEYWORD_SCHEMA = {
    "type": "object",
    "required": ["word"],
    "additionalProperties": False,
    "properties": {"word": {"type": "string", "minLength": 1}, "field": {"type": "string"}},
}


@pytest.fixture
def keyword() -> Iterator[VerificationMethod]:
    method = VerificationMethod(
        "keyword", KeywordParams, cost_rank=1, build=build_keyword, parameters_schema=KEYWORD_SCHEMA
    )
    METHODS.register(method)
    try:
        yield method
    finally:
        METHODS.unregister("keyword")


def keyword_task(parameters: Any, **verification: Any) -> dict[str, Any]:
    section = {"method": "keyword", "parameters": parameters, "fallback_strategy": "fail"}
    return base_task(verification={**section, **verification})


def test_a_registered_method_is_parsed_into_its_parameter_class(
    keyword: VerificationMethod,
) -> None:
    definition = parse_definition(keyword_task({"word": "chef"}), source="t.json")
    assert definition.verification.method == "keyword"
    assert definition.verification.parameters == KeywordParams(word="chef")
    # and written back in the same JSON shape
    unstructured = make_converter().unstructure(definition.verification, VerificationSpec)
    assert unstructured == {
        "method": "keyword",
        "parameters": {"word": "chef", "field": "title"},
        "fallback_strategy": "fail",
    }


def test_bad_parameters_of_a_registered_method_name_the_file_and_path(
    keyword: VerificationMethod, tmp_path: Path
) -> None:
    path = tmp_path / "task.json"
    path.write_text(json.dumps(keyword_task({"field": "title"})), encoding="utf-8")
    with pytest.raises(TaskSchemaError) as caught:
        load_definition(path)
    assert any(
        p.source == str(path) and p.path == "$.verification.parameters" and "word" in p.message
        for p in caught.value.problems
    ), caught.value.problems
    steps = {"steps": [{"method": "keyword", "parameters": {"word": ""}}]}
    path.write_text(json.dumps(keyword_task(steps, method="chain")), encoding="utf-8")
    with pytest.raises(TaskSchemaError) as caught:
        load_definition(path)
    assert [p.path for p in caught.value.problems] == [
        "$.verification.parameters.steps[0].parameters.word"
    ]


def test_an_unregistered_method_is_unknown_everywhere(tmp_path: Path) -> None:
    assert "keyword" not in METHODS
    path = tmp_path / "task.json"
    path.write_text(json.dumps(keyword_task({"word": "chef"})), encoding="utf-8")
    with pytest.raises(TaskSchemaError) as caught:
        load_definition(path)
    problems = caught.value.problems
    assert [(p.source, p.path) for p in problems] == [(str(path), "$.verification.method")]
    with pytest.raises(DefinitionError, match=r"unknown verification method 'keyword'.*\$\.x"):
        create_verifier(VerificationSpec("keyword", KeywordParams("chef")), _path="$.x")


def test_the_factory_builds_it_alone_and_in_a_chain_by_its_cost_rank(
    keyword: VerificationMethod,
) -> None:
    spec = VerificationSpec("keyword", KeywordParams("chef"))
    assert isinstance(create_verifier(spec), KeywordVerifier)
    consensus = VerificationSpec("consensus", ConsensusParams(similarity_metric="text"))
    chain = create_verifier(VerificationSpec("chain", ChainParams((consensus, spec))))
    assert isinstance(chain, ChainVerifier)
    assert [step.method for step in chain.steps] == ["keyword", "consensus"]
    assert order_cheapest_first([consensus, spec]) == [spec, consensus]
    with pytest.raises(DefinitionError, match=r"needs KeywordParams, got NoParams @ \$\.v"):
        create_verifier(VerificationSpec("keyword", NoParams()), _path="$.v")


async def test_the_engine_runs_a_registered_method(
    keyword: VerificationMethod, tmp_path: Path
) -> None:
    task = parse_definition(copy.deepcopy(keyword_task({"word": "chef"})), source="t.json")
    models = ScriptedModels()
    models.handlers["*"] = reply({"title": "Head Chef"})
    async with _engine(tmp_path, models, task) as engine:
        passed = await engine.execute("title_extraction", {"posting": "Head Chef"})
        models.handlers["*"] = reply({"title": "Baker"})
        with pytest.raises(VerificationFailed, match=r"failed \(keyword"):
            await engine.execute("title_extraction", {"posting": "Baker"})
    assert passed.verdict is not None
    assert (passed.status, passed.verdict.method, passed.verdict.passed) == (
        "verified",
        "keyword",
        True,
    )


def _engine(tmp_path: Path, models: ScriptedModels, task: TaskDefinition) -> Engine:
    return Engine(
        EngineConfig(data_dir=tmp_path / "data", models=MODELS, cache=False),
        registry=DefinitionRegistry([task]),
        catalog=Catalog.from_data(catalog_data()),
        providers=dict.fromkeys(MODELS, models),
    )


def test_cold_start_reads_the_records_rank(keyword: VerificationMethod) -> None:
    policy = VerificationPolicy(min_samples=5)
    cheap = parse_definition(keyword_task({"word": "chef"}), source="t.json")
    override = policy.verification_override(cheap, TaskHistory())
    assert override is not None
    assert override.method == "consensus"
    METHODS.register(attrs.evolve(keyword, cost_rank=4), replace=True)
    strict = parse_definition(keyword_task({"word": "chef"}), source="t.json")
    assert policy.verification_override(strict, TaskHistory()) is None  # kept: stricter


def test_the_built_in_tables_are_the_registry() -> None:
    assert VERIFICATION_METHODS == METHODS.names()
    assert set(VERIFICATION_METHODS) == {
        "none",
        "consensus",
        "hierarchical",
        "external",
        "human",
        "chain",
        "cascade",
    }
    # the shipped schema file describes exactly the built-in methods (it is what editors see)
    schema = task_definition_schema()
    assert schema["$defs"]["method"]["enum"] == list(METHODS.names())
    rules = schema["$defs"]["parameters_per_method"]["allOf"]
    assert {r["if"]["properties"]["method"]["const"] for r in rules} == set(METHODS.names())
    for method in METHODS:
        assert attrs.has(method.parameters)
        assert isinstance(method.cost_rank, int)


def test_cost_rank_and_calls_out_follow_the_steps() -> None:
    external = VerificationSpec("external", ExternalParams(function="f"))
    human = VerificationSpec("human", HumanParams())
    chain = VerificationSpec("chain", ChainParams((external, human)))
    assert cost_rank(chain) == METHODS["human"].cost_rank
    assert cost_rank(VerificationSpec("chain", ChainParams(()))) == 0
    assert calls_out(chain)
    assert calls_out(external)
    assert not calls_out(human)
    assert cost_rank(VerificationSpec("unheard-of")) > max(m.cost_rank for m in METHODS)
    consensus = VerificationSpec("consensus", ConsensusParams(min_models=3))
    assert voters_ahead(consensus) == 2
    assert voters_ahead(chain) == voters_ahead(VerificationSpec("unheard-of")) == 0


def test_registering_twice_or_without_an_attrs_class_is_refused() -> None:
    registry = MethodRegistry()
    method = VerificationMethod("x", KeywordParams, cost_rank=1, build=build_keyword)
    registry.register(method)
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(method)
    with pytest.raises(ConfigurationError, match="attrs class"):
        registry.register(VerificationMethod("y", dict, cost_rank=1, build=build_keyword))  # type: ignore[arg-type]
    version = registry.version
    registry.unregister("x")
    assert "x" not in registry
    assert registry.version > version


@pytest.mark.parametrize("posts", [True, False])
async def test_the_engine_gives_an_http_session_to_a_method_that_calls_out(
    tmp_path: Path, posts: bool
) -> None:
    sessions: list[object] = []

    def build(params: KeywordParams, context: BuildContext) -> Verifier:
        sessions.append(context.session)
        return KeywordVerifier(params)

    METHODS.register(VerificationMethod("probe", KeywordParams, 1, build, calls_out=posts))
    try:
        section = {"method": "probe", "parameters": {"word": "chef"}, "fallback_strategy": "fail"}
        task = parse_definition(base_task(verification=section), source="t.json")
        models = ScriptedModels()
        models.handlers["*"] = reply({"title": "Chef"})
        async with _engine(tmp_path, models, task) as engine:
            result = await engine.execute("title_extraction", {"posting": "Chef"})
    finally:
        METHODS.unregister("probe")
    assert result.verdict is not None
    assert result.verdict.method == "keyword"
    assert len(sessions) == 1
    assert (sessions[0] is not None) is posts
