"""The error tree: located problems render as ``file: $.path: message``."""

from tlm.errors import Problem, ProviderError, RateLimited, TaskSchemaError


def test_problem_renders_file_path_and_message() -> None:
    problem = Problem("definitions/tasks/x/1.0.0.json", "$.verification", "bad")
    assert str(problem) == "definitions/tasks/x/1.0.0.json: $.verification: bad"
    error = TaskSchemaError([problem, Problem("f.json", "$", "empty")])
    assert str(error).splitlines() == [str(problem), "f.json: $: empty"]


def test_retryable_is_a_class_fact() -> None:
    assert RateLimited("slow", provider="p", model="m", retry_after=2.0).retryable
    assert not ProviderError("x", provider="p", model="m").retryable
