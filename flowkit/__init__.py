"""flowkit: workflows as code, orchestrated on AWS Lambda, MongoDB and EventBridge."""

from __future__ import annotations

import logging

from flowkit.errors import FlowkitError, InvalidWorkflow

__all__ = ["FlowkitError", "InvalidWorkflow"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
