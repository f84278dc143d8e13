"""Every validation problem, fed on purpose; all reported at once, sorted, naming the culprits."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from dsl_builders import flow as _flow
from dsl_builders import mk

from flowkit import Defaults, Notify, Retry, compile, input, job, parallel, sequence, validate, when
from flowkit.document import WorkflowDocument
from flowkit.dsl import Workflow
from flowkit.errors import InvalidWorkflow
from flowkit.validation import Report

flow = functools.partial(_flow, name="nightly-etl")


def problems(wf: Workflow) -> list[str]:
    with pytest.raises(InvalidWorkflow) as info:
        compile(wf)
    assert info.value.workflow == wf.name
    return info.value.problems


def test_unknown_need_suggests_the_closest_name() -> None:
    extract, transform = mk("extract"), mk("transform")
    load = mk("load", needs=["trnsform"])
    assert problems(flow(extract >> transform >> load)) == [
        "job 'load' needs 'trnsform', which is not defined in workflow 'nightly-etl' (did you mean 'transform'?)"
    ]


def test_cycle_through_needs_prints_the_cycle() -> None:
    a, b = mk("a", needs=["b"]), mk("b")
    [message] = problems(flow(a >> b))
    assert message == "cycle in workflow 'nightly-etl': a -> b -> a (each needs the one before it)"


def test_self_need_is_a_cycle() -> None:
    [message] = problems(flow(mk("a", needs=["a"])))
    assert "a -> a" in message


def test_jobs_hanging_off_a_cycle_are_unreachable() -> None:
    a, b, c = mk("a", needs=["b"]), mk("b", needs=["a"]), mk("c", needs=["b"])
    found = problems(flow(parallel(a, b, c)))
    assert (
        "job 'c' is unreachable in workflow 'nightly-etl': it only depends on a cycle, so it never starts"
        in found
    )
    assert any(m.startswith("cycle in workflow 'nightly-etl': a -> b -> a") for m in found)


def test_duplicate_job_names() -> None:
    first, second = mk("extract"), mk("extract")
    assert problems(flow(first >> second)) == [
        "job name 'extract' is used by 2 different jobs in workflow 'nightly-etl': give each its own name (job.named('...'))"
    ]


def test_same_job_object_used_twice_without_named() -> None:
    extract, load = mk("extract"), mk("load")
    assert problems(flow(extract >> load >> extract)) == [
        "job 'extract' is used twice in workflow 'nightly-etl': use extract.named('<another-name>') for the second use"
    ]


def test_named_copy_is_accepted() -> None:
    extract = mk("extract")
    doc = compile(flow(extract >> extract.named("extract-again")))
    assert [j.name for j in doc.jobs] == ["extract", "extract-again"]


def test_condition_on_a_job_that_is_not_upstream() -> None:
    a, b, c = mk("a"), mk("b"), mk("c")
    found = problems(flow(parallel(a, when(a.output["rows"] > 0, then=b)) >> c))
    assert found == [
        "job 'b' has condition `a.output.rows > 0`, which references job 'a', not guaranteed to have finished "
        "before 'b' (make 'a' run before it)"
    ]


def test_condition_on_a_job_inside_its_own_arm() -> None:
    a, b = mk("a"), mk("b")
    found = problems(flow(when(b.succeeded, then=a >> b)))
    assert len(found) == 2
    assert all("references job 'b'" in m for m in found)


def test_condition_on_an_unknown_job_suggests_a_name() -> None:
    extract, load = mk("extract"), mk("load")
    ghost = mk("extrakt")
    [message] = problems(flow(extract >> when(ghost.output["rows"] > 0, then=load)))
    assert message == (
        "job 'load' has condition `extrakt.output.rows > 0`, which references job 'extrakt', not defined in "
        "workflow 'nightly-etl' (did you mean 'extract'?)"
    )


def test_empty_compositions_are_reported_with_their_place() -> None:
    a, b = mk("a"), mk("b")
    found = problems(flow(a >> parallel() >> b >> when(input["x"] == 1, then=sequence())))
    assert found == [
        "workflow 'nightly-etl': empty parallel() after 'a': give it at least one job",
        "workflow 'nightly-etl': empty sequence() after 'b': give it at least one job",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": -5}, "job 'a' has timeout -5s: a timeout must be positive"),
        ({"timeout": 0}, "job 'a' has timeout 0s: a timeout must be positive"),
        ({"retry": Retry(attempts=0)}, "job 'a' has Retry(attempts=0): attempts must be at least 1"),
        ({"retry": Retry(backoff=0.5)}, "job 'a' has Retry(backoff=0.5): backoff must be at least 1"),
        ({"retry": Retry(interval=-1)}, "job 'a' has Retry(interval=-1): must not be negative"),
        ({"retry": Retry(max_delay=-2)}, "job 'a' has Retry(max_delay=-2): must not be negative"),
        ({"retry": Retry(jitter="some")}, "job 'a' has Retry(jitter='some'): use one of 'none', 'full'"),
        ({"target": ""}, "job 'a' has an empty target function: give a Lambda function name or ARN"),
        (
            {"target": "f", "qualifier": " "},
            "job 'a' has an empty qualifier: give an alias or version, or none",
        ),
        ({"input": {"when": object()}}, "job 'a': input is not JSON"),
    ],
)
def test_bad_option_values(options: dict[str, Any], message: str) -> None:
    found = problems(flow(mk("a", **options)))
    assert len(found) == 1 and found[0].startswith(message), found


def test_body_less_job_without_target() -> None:
    assert problems(flow(job("charge-card", timeout=5))) == [
        "job 'charge-card' has no body and no target: pass job('charge-card', target='<function name or ARN>')"
    ]


@pytest.mark.parametrize("name", ["load.eu", "load eu", "lóad", "$load"])
def test_bad_job_names(name: str) -> None:
    assert problems(flow(mk(name))) == [
        f"job name {name!r} in workflow 'nightly-etl' is invalid: use only letters, digits, '_' and '-'"
    ]


def test_bad_workflow_name() -> None:
    assert problems(flow(mk("a"), name="nightly.etl")) == [
        "workflow name 'nightly.etl' is invalid: use only letters, digits, '_' and '-'"
    ]


def test_unknown_notify_event() -> None:
    [message] = problems(flow(mk("a"), notify=Notify(on=["run.failed", "run.exploded"])))
    assert message.startswith("workflow 'nightly-etl': Notify(on=...) has unknown event 'run.exploded'")


def test_all_problems_are_reported_at_once_and_sorted() -> None:
    a = mk("a", timeout=-1)
    b = mk("b", needs=["zz"], retry=Retry(attempts=0))
    found = problems(flow(a >> b >> a >> parallel()))
    assert len(found) == 5
    assert found == sorted(found)
    assert "job 'a' is used twice" in found[1]


def test_missing_timeout_is_a_warning_not_an_error() -> None:
    wf = flow(mk("a", timeout=None) >> mk("b"))
    report = validate(wf)
    assert report.ok
    assert report.warnings == ["job 'a' has no timeout: set @job(timeout=...) or Defaults(timeout=...)"]
    compile(wf)  # does not raise


def test_defaults_timeout_silences_the_warning() -> None:
    report = validate(flow(mk("a", timeout=None), defaults=Defaults(timeout=30)))
    assert report == Report(errors=[], warnings=[])


def _doc(**changes: Any) -> WorkflowDocument:
    a, b = mk("a"), mk("b")
    doc = compile(flow(a >> b))
    data = doc.model_dump(mode="json")
    data.update(changes)
    return WorkflowDocument.model_validate(data)


def test_validate_a_document_with_broken_phases() -> None:
    doc = _doc(phases=[{"name": "a", "jobs": ["a", "ghost"]}, {"name": "a", "jobs": []}])
    assert validate(doc).errors == [
        "job 'b' is in phase 'b', which is not defined in workflow 'nightly-etl'",
        "phase 'a' lists job 'ghost', which is not defined in workflow 'nightly-etl'",
        "phase name 'a' is used twice in workflow 'nightly-etl': rename the job or stage that causes it",
    ]


def test_validate_a_document_with_a_malformed_condition() -> None:
    doc = _doc()
    data = doc.model_dump(mode="json")
    data["jobs"][1]["condition"] = {"op": "eval", "args": []}
    [message] = validate(WorkflowDocument.model_validate(data)).errors
    assert message.startswith("condition of job 'b': unknown operator 'eval'")


def test_validate_an_empty_document() -> None:
    assert "workflow 'nightly-etl' has no jobs" in validate(_doc(jobs=[], phases=[])).errors


def test_a_body_that_cannot_be_imported_by_name_is_a_warning() -> None:
    def local_body(event: dict[str, Any], context: Any = None) -> None:
        return None

    report = validate(flow(job(name="inner", timeout=1)(local_body)))
    assert report.errors == []
    [warning] = report.warnings
    assert warning.startswith(
        "job 'inner' has body 'test_validation:test_a_body_that_cannot_be_imported_by_name"
    )
    assert warning.endswith("cannot be imported by name: define it at the top level of an importable module")


def test_a_job_name_over_the_length_limit_is_refused_with_its_length() -> None:
    name = "j" * 20_000
    assert problems(flow(mk(name))) == [
        f"job name {name[:60]!r}... in workflow 'nightly-etl' is 20000 characters long; the limit is 128"
    ]


def test_a_job_name_at_the_length_limit_is_accepted() -> None:
    compile(flow(mk("j" * 128)))
