"""The runtime's typed documents (flowkit/runtime/documents.py) have the keys of the published schema.

To add a field to a stored document, add it to the pydantic model in flowkit/document.py and to the
TypedDict in flowkit/runtime/documents.py; a field stored but not published goes into STORED_ONLY.
"""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
from pydantic import BaseModel

from flowkit.document import AttemptRecord, JobError, JobRun, Run, StatusEvent
from flowkit.runtime import documents
from flowkit.runtime.documents import AttemptDoc, ErrorDoc, JobEntry, RunDoc, StatusDoc

PAIRS: list[tuple[type[Any], type[BaseModel]]] = [
    (AttemptDoc, AttemptRecord),
    (ErrorDoc, JobError),
    (JobEntry, JobRun),
    (RunDoc, Run),
    (StatusDoc, StatusEvent),
]


def stored_keys(model: type[BaseModel]) -> set[str]:
    """The keys a model's document has in MongoDB (a field's alias when it has one: ``_id``)."""
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(("typed", "model"), PAIRS, ids=[typed.__name__ for typed, _ in PAIRS])
def test_the_typed_document_has_the_keys_of_the_published_model(
    typed: type[Any], model: type[BaseModel]
) -> None:
    extra = documents.STORED_ONLY.get(typed.__name__, frozenset())
    assert set(get_type_hints(typed)) == stored_keys(model) | extra


def test_stored_only_keys_are_not_published() -> None:
    for name, keys in documents.STORED_ONLY.items():
        model = dict((typed.__name__, model) for typed, model in PAIRS)[name]
        assert not keys & stored_keys(model), name


def test_a_new_run_and_a_status_event_have_exactly_the_typed_keys() -> None:
    from flowkit.runtime.start import new_run_document
    from flowkit.runtime.store import make_status

    doc = new_run_document(
        {"name": "w", "version": "v", "phases": [{"name": "p", "jobs": ["a"]}], "jobs": [{"name": "a"}]},
        {},
        "r-1",
    )
    # draining: set by a transition; next_due_ms: only while a timer is due (this workflow has no timeout);
    # released: by a claim given back; unrunnable_done: once an ended run's unrunnable jobs are cancelled
    later = {"draining", "next_due_ms", "released", "unrunnable_done"}
    assert set(doc) == set(get_type_hints(RunDoc)) - later
    # output_ref / error_ref: set by the outcome that stores a big value in the results collection
    assert set(doc["jobs"]["a"]) == set(get_type_hints(JobEntry)) - {"output_ref", "error_ref"}
    status = make_status("r-1", "w", "a", 1, "failed", error={"type": "E", "message": "m"})
    assert set(status) == set(get_type_hints(StatusDoc))
    assert set(status["error"] or {}) == set(get_type_hints(ErrorDoc))
