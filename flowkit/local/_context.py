"""A stand-in for the AWS Lambda context object, handed to handlers and job bodies in local runs."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["LambdaContext"]


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of ``awslambdaric``'s context that handlers and job bodies commonly read."""

    function_name: str
    timeout_seconds: float = 900.0
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    # a random version-4 UUID without os.urandom: one syscall per job adds up in wide local runs
    aws_request_id: str = field(
        default_factory=lambda: str(uuid.UUID(int=random.getrandbits(128), version=4))
    )
    started: float = field(default_factory=time.monotonic)
    deadline: datetime | None = None
    """When the job's attempt times out (its dispatch + its ``timeout``); None without a timeout."""
    clock: Callable[[], datetime] | None = None
    """The run's clock (virtual in tests): the remaining time is ``deadline - clock()``."""
    heartbeat: Callable[[], bool] = field(default=lambda: False)
    """``context.heartbeat()``: tell flowkit the attempt is alive (``@job(heartbeat=...)``)."""

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left: until the job's own timeout, else until the Lambda's ``timeout_seconds``."""
        if self.deadline is not None and self.clock is not None:
            return max(0, int((self.deadline - self.clock()).total_seconds() * 1000))
        remaining = self.timeout_seconds - (time.monotonic() - self.started)
        return max(0, int(remaining * 1000))
