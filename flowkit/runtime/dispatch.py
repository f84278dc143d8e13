"""How a claimed job is started: the payload it receives, and the AWS Lambda async-invoke dispatcher.

A dispatcher is anything with ``dispatch(spec, payload)``. ``spec`` is the job's entry of the
compiled configuration as stored in the run (the ``model_dump(mode="json")`` of a ``JobSpec``, a plain
dict: the runtime reads plain dicts to keep pydantic out of the Lambda cold start), ``payload`` is
what ``build_payload`` returned. The local runner provides its own dispatcher (a thread pool calling
the job's Python body); ``LambdaDispatcher`` is the production one.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

from flowkit.errors import DispatchError, DispatchUncertain
from flowkit.vocab import LAMBDA_ASYNC_PAYLOAD_LIMIT

__all__ = [
    "DEFAULT_PAYLOAD_LIMIT",
    "Dispatcher",
    "LambdaDispatcher",
    "build_payload",
    "copy_data",
    "encode_payload",
]

logger = logging.getLogger(__name__)

DEFAULT_PAYLOAD_LIMIT: Final = LAMBDA_ASYNC_PAYLOAD_LIMIT

Spec = Mapping[str, Any]


class Dispatcher(Protocol):
    def dispatch(self, spec: Spec, payload: dict[str, Any]) -> None:
        """Start the job; raise if it could not be started (the claim is then released).

        Raise ``DispatchUncertain`` when the request may have reached the target (sent, then no
        answer): the claim is kept then, since sending again could run the job twice.
        """


# botocore errors raised after the request went out: the target may have received it.
_MAYBE_SENT: Final = frozenset({"HTTPClientError", "ResponseParserError", "IncompleteReadError"})


def _maybe_sent(exc: BaseException) -> bool:
    """Whether ``exc`` (from boto3) leaves open that the invoke reached Lambda: read timeout, cut connection."""
    return any(cls.__name__ in _MAYBE_SENT for cls in type(exc).__mro__)


def copy_data(value: Any) -> Any:
    """A deep copy of JSON-shaped data: each dict and list copied, strings and numbers shared.

    Any other value is copied by ``copy.deepcopy``, which gives the same result for JSON data at
    several times the cost (its memo of shared parts matters nowhere in data sent as JSON).
    """
    kind = type(value)
    if kind is dict:
        return {key: copy_data(item) for key, item in value.items()}
    if kind is list:
        return [copy_data(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent to the target: compact JSON, UTF-8."""
    return json.dumps(
        payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    ).encode()


def build_payload(
    run: Mapping[str, Any], spec: Spec, attempt: int, *, limit: int = DEFAULT_PAYLOAD_LIMIT
) -> dict[str, Any]:
    """What a job receives: run id, workflow, job, attempt, run input, static input, needed outputs.

    Raises ``DispatchError`` naming the job and both sizes when the encoded payload exceeds ``limit``.
    """
    name = spec["name"]
    jobs = run["jobs"]
    payload = {
        "run_id": run["_id"],
        "workflow": run["workflow"],
        "job": name,
        "attempt": attempt,
        "input": run.get("input") or {},
        "job_input": spec.get("input") or {},
        "needs": {need: jobs[need].get("output") for need in spec.get("needs", ()) if need in jobs},
    }
    size = len(encode_payload(payload))
    if size > limit:
        biggest = sorted(
            ((len(encode_payload({"v": value})), need) for need, value in payload["needs"].items()),
            reverse=True,
        )
        hint = f"; largest needed output: {biggest[0][1]!r} ({biggest[0][0]} bytes)" if biggest else ""
        raise DispatchError(
            f"payload for job {name!r} of run {run['_id']!r} is {size} bytes, over the limit of {limit} bytes"
            f"{hint}. Return a reference (e.g. an S3 key) instead of large outputs, or raise "
            "FLOWKIT_PAYLOAD_LIMIT_BYTES if your target accepts more.",
            workflow=run.get("workflow"),
            job=name,
            run_id=run["_id"],
        )
    return payload


class LambdaDispatcher:
    """Starts a job with an asynchronous AWS Lambda invoke (``InvocationType="Event"``).

    The boto3 client is created on first use (once per container) unless one is given. It is created
    with botocore's own retries turned off: an invoke that timed out reading the answer may have
    started the job, and botocore would send it again. flowkit decides instead: an error that proves
    the request never left is re-raised (the claim is released and the event retried), anything that
    may have reached Lambda is ``DispatchUncertain`` (the claim stays, the attempt's deadline recovers a
    request that was in fact lost). ``read_timeout`` bounds how long an invoke waits for its answer.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        endpoint_url: str | None = None,
        read_timeout: float = 10.0,
    ) -> None:
        self._client = client
        self.payload_limit = payload_limit
        self.endpoint_url = endpoint_url
        self.read_timeout = read_timeout

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - depends on the installed extras
                from flowkit.errors import MissingDependency

                raise MissingDependency("LambdaDispatcher needs boto3: pip install 'flowkit[aws]'") from exc
            from botocore.config import Config

            config = Config(retries={"total_max_attempts": 1}, read_timeout=self.read_timeout)
            self._client = boto3.client("lambda", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def dispatch(self, spec: Spec, payload: dict[str, Any]) -> None:
        target = spec.get("target") or {}
        function = target.get("function")
        if not function:
            raise DispatchError(
                f"job {spec['name']!r} has no Lambda function to invoke (target.function is empty)",
                job=spec["name"],
                run_id=payload.get("run_id"),
            )
        body = encode_payload(payload)
        if len(body) > self.payload_limit:
            raise DispatchError(
                f"payload for job {spec['name']!r} is {len(body)} bytes, over the limit of "
                f"{self.payload_limit} bytes",
                job=spec["name"],
                run_id=payload.get("run_id"),
            )
        kwargs: dict[str, Any] = {"FunctionName": function, "InvocationType": "Event", "Payload": body}
        if target.get("qualifier"):
            kwargs["Qualifier"] = target["qualifier"]
        try:
            response = self.client.invoke(**kwargs)
        except Exception as exc:
            if _maybe_sent(exc):
                raise DispatchUncertain(
                    f"invoking {function!r} for job {spec['name']!r} may have reached Lambda "
                    f"({type(exc).__name__}: {exc}); not sent again",
                    job=spec["name"],
                    run_id=payload.get("run_id"),
                ) from exc
            raise
        status = response.get("StatusCode")
        if status != 202:
            raise DispatchError(
                f"Lambda {function!r} did not accept job {spec['name']!r} (status {status})",
                job=spec["name"],
                run_id=payload.get("run_id"),
            )
        logger.info(
            "dispatched %s/%s attempt %s to %s",
            payload.get("run_id"),
            spec["name"],
            payload.get("attempt"),
            function,
        )
