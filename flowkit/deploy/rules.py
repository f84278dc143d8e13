"""The EventBridge event patterns flowkit's rules use (documented in docs/deploying.md, section 4).

Standard library and ``flowkit.vocab`` only. ``detail_type`` names the database and collection the Atlas trigger watches;
the template substitutes its parameters there.
"""

from __future__ import annotations

from typing import Any, Final

from flowkit.vocab import EventStatus

__all__ = ["LAMBDA_RESULT_PATTERN", "STATUS_RULES", "status_pattern"]

PARTNER_SOURCE_PREFIX: Final = "aws.partner/mongodb.com/stitch.trigger/"

# rule name -> (handlers it targets, what the status document must look like; None: every insert)
STATUS_RULES: Final[dict[str, tuple[tuple[str, ...], dict[str, Any] | None]]] = {
    "flowkit-job-outcomes": (
        ("statemachine_job", "orchestrator_job"),
        {"job": [{"wildcard": "*"}], "status": [EventStatus.SUCCESS.value, EventStatus.FAILED.value]},
    ),
    "flowkit-run-started": (("orchestrator_job",), {"job": [None], "status": [EventStatus.STARTED.value]}),
    "flowkit-all-statuses": (("notifications_job",), None),
}

# Lambda asynchronous-invocation results (destinations) of the job functions -> destinations_job.
LAMBDA_RESULT_PATTERN: Final[dict[str, Any]] = {
    "source": ["lambda"],
    "detail-type": [
        "Lambda Function Invocation Result - Success",
        "Lambda Function Invocation Result - Failure",
    ],
}


def status_pattern(
    rule: str, detail_type: Any = "MongoDB Database Trigger for flowkit.statuses"
) -> dict[str, Any]:
    """The event pattern of one of ``STATUS_RULES`` (``detail_type`` may be a CloudFormation ``Fn::Sub``)."""
    _, document = STATUS_RULES[rule]
    detail: dict[str, Any] = {"operationType": ["insert"]}
    if document is not None:
        detail["fullDocument"] = document
    return {"source": [{"prefix": PARTNER_SOURCE_PREFIX}], "detail-type": [detail_type], "detail": detail}
