"""Order pipeline with a failure branch: a declined card releases the stock and tells the customer.

``charge`` fails (raises) when the run input has ``{"card": "declined"}``. Because the workflow tests
``charge.failed``, that failure is an expected path: the run goes on with the ``then`` arm and
succeeds. Any other card ships the order.

    flowkit run workflows/order_pipeline.py --input '{"order_id": "o-1001", "card": "declined"}'
"""

from __future__ import annotations

from typing import Any

from flowkit import Defaults, Notify, Retry, job, sequence, when, workflow

Event = dict[str, Any]


class CardDeclined(Exception):
    """The payment provider refused the card."""


def _order(event: Event) -> dict[str, Any]:
    run_input: dict[str, Any] = event.get("input") or {}
    return run_input


@job(name="validate-order", timeout=30)
def validate_order(event: Event, context: Any = None) -> dict[str, Any]:
    """Check the order has items and a total."""
    order = _order(event)
    items = list(order.get("items", ["sku-1"]))
    return {"order_id": order.get("order_id", "o-0"), "items": len(items), "total_cents": 1999 * len(items)}


@job(name="reserve-stock", timeout=60, retry=Retry(attempts=3, interval=5))
def reserve_stock(event: Event, context: Any = None) -> dict[str, Any]:
    """Hold the items in the warehouse."""
    order = _order(event)
    return {"reservation": f"res-{order.get('order_id', 'o-0')}"}


@job(timeout=60)
def charge(event: Event, context: Any = None) -> dict[str, Any]:
    """Charge the customer's card; raises CardDeclined for {"card": "declined"}."""
    order = _order(event)
    if order.get("card") == "declined":
        raise CardDeclined(f"card declined for order {order.get('order_id', 'o-0')}")
    return {"payment_id": f"pay-{order.get('order_id', 'o-0')}", "status": "captured"}


@job(name="release-stock", timeout=60)
def release_stock(event: Event, context: Any = None) -> dict[str, Any]:
    """Give the reserved items back."""
    return {"released": f"res-{_order(event).get('order_id', 'o-0')}"}


@job(name="notify-customer", timeout=30, input={"template": "payment-declined"})
def notify_customer(event: Event, context: Any = None) -> dict[str, Any]:
    """Email the customer that the payment failed."""
    return {"sent": event.get("job_input", {}).get("template"), "order_id": _order(event).get("order_id")}


@job(timeout=300)
def ship(event: Event, context: Any = None) -> dict[str, Any]:
    """Book the parcel with the carrier."""
    return {"tracking": f"trk-{_order(event).get('order_id', 'o-0')}"}


@job(name="send-receipt", timeout=30, input={"template": "receipt"})
def send_receipt(event: Event, context: Any = None) -> dict[str, Any]:
    """Email the receipt with the tracking number."""
    tracking = ((event.get("needs") or {}).get("ship") or {}).get("tracking")
    return {"sent": event.get("job_input", {}).get("template"), "tracking": tracking}


@job(name="close-order", timeout=30, needs=["charge"])
def close_order(event: Event, context: Any = None) -> dict[str, Any]:
    """Mark the order paid-and-shipped or cancelled."""
    needs = event.get("needs") or {}
    shipped = bool(needs.get("send-receipt"))
    return {"order_id": _order(event).get("order_id"), "state": "shipped" if shipped else "cancelled"}


@workflow(
    name="order-pipeline",
    notify=Notify(slack_channel="#orders", on=["run.failed", "job.failed"]),
    defaults=Defaults(function_prefix="orders-", qualifier="live"),
)
def order_pipeline() -> Any:
    """Validate, reserve, charge; ship on success, release and notify on a declined card."""
    return sequence(
        validate_order,
        reserve_stock,
        charge,
        when(
            charge.failed,
            then=release_stock >> notify_customer,
            otherwise=ship >> send_receipt,
        ),
        close_order,
    )
