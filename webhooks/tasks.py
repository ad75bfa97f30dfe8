"""Celery task: send an endpoint's due deliveries, in order."""

from celery import shared_task

from .delivery import endpoint_deliver_due


@shared_task(name="webhooks.deliver_endpoint", acks_late=True, ignore_result=True)
def deliver_endpoint(endpoint_id: int) -> int:
    return endpoint_deliver_due(endpoint_id=endpoint_id)
