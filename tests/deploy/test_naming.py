"""Lambda function names derived from workflow and job names: clean, bounded, stable, overridable."""

from __future__ import annotations

import pytest

from flowkit import Defaults, compile, job, workflow
from flowkit.naming import FUNCTION_NAME_LIMIT, function_name, is_function_name


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("etl", "export_events"), "etl-export-events"),
        (("etl-", "export_events"), "etl-export-events"),
        (("x__y..z",), "x-y-z"),
        (("--a--",), "a"),
        (("",), "flowkit"),
    ],
)
def test_names_are_kebab_case_lambda_names(parts: tuple[str, ...], expected: str) -> None:
    assert function_name(*parts) == expected
    assert is_function_name(function_name(*parts))


def test_long_names_are_cut_with_a_hash_that_keeps_them_apart() -> None:
    first, second = function_name("a" * 80 + "1"), function_name("a" * 80 + "2")
    assert len(first) == len(second) == FUNCTION_NAME_LIMIT
    assert first != second and first[:50] == second[:50]
    assert function_name("a" * 80 + "1") == first  # stable


@job
def export_events(event: dict[str, object], context: object = None) -> None:
    return None


def test_the_compiler_derives_clean_names_and_an_explicit_target_wins() -> None:
    @workflow(name="etl", defaults=Defaults(function_prefix="etl-"))
    def etl() -> object:
        return export_events >> export_events.named("export_events_2", target="my_own_fn")

    targets = {spec.name: spec.target.function for spec in compile(etl).jobs}
    assert targets == {"export_events": "etl-export-events", "export_events_2": "my_own_fn"}


def test_jobs_function_puts_every_body_in_one_function() -> None:
    @workflow(name="etl", defaults=Defaults(function_prefix="etl-", jobs_function="etl-jobs"))
    def etl() -> object:
        legacy = job("legacy", target="arn:aws:lambda:eu-west-1:1:function:legacy")
        return export_events >> export_events.named("again") >> legacy

    targets = {spec.name: spec.target.function for spec in compile(etl).jobs}
    assert targets == {
        "export_events": "etl-jobs",
        "again": "etl-jobs",
        "legacy": "arn:aws:lambda:eu-west-1:1:function:legacy",
    }


def test_jobs_function_must_be_a_name() -> None:
    with pytest.raises(TypeError, match="jobs_function"):
        Defaults(jobs_function="")
