"""The service's Prometheus metrics (docs/OPERATIONS.md says what each one means).

Gauges are `livesum`: in multiprocess mode a process that exited stops counting.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "bo1_http_requests_total",
    "HTTP requests answered, by method, URL pattern and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "bo1_http_request_duration_seconds",
    "Time to answer an HTTP request (to the response headers for a stream), by URL pattern.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SESSION_TRANSITIONS = Counter(
    "bo1_session_transitions_total",
    "Committed session status changes, by the status reached.",
    ["to"],
)
DELIBERATIONS_RUNNING = Gauge(
    "bo1_deliberations_running",
    "Deliberations a worker process is running now.",
    multiprocess_mode="livesum",
)
DELIBERATION_DURATION = Histogram(
    "bo1_deliberation_duration_seconds",
    "Wall time of one worker's run of a deliberation, by how the run ended.",
    ["outcome"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
LLM_REQUESTS = Counter(
    "bo1_llm_requests_total",
    "Model provider calls, by provider, model and outcome (ok, or the error code).",
    ["provider", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "bo1_llm_tokens_total",
    "Tokens of model calls, by provider, model and kind (input, output, cached, cache_write).",
    ["provider", "model", "kind"],
)
LLM_COST = Counter(
    "bo1_llm_cost_usd_total",
    "Cost of model calls in USD, priced by deliberation/engine/pricing.py.",
    ["provider", "model"],
)
OUTBOX_PENDING = Gauge(
    "bo1_outbox_pending",
    "Writes waiting in an outbox: webhook deliveries recorded but not sent (outbox=webhooks), "
    "session writes a worker keeps while PostgreSQL refuses them (outbox=session_writes).",
    ["outbox"],
    multiprocess_mode="livesum",
)
WEBHOOK_DELIVERIES = Counter(
    "bo1_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered, retry, refused, failed).",
    ["outcome"],
)
SSE_STREAMS_OPEN = Gauge(
    "bo1_sse_streams_open",
    "Server-Sent Event streams open now.",
    multiprocess_mode="livesum",
)
