"""The request-path machinery: where this service serves requests differently from stock
Django, DRF and uvicorn, and why.

Everything here replaces or adjusts one framework piece for speed, keeps its answers the same,
and opens with what the stock piece does, what is changed, why, and what it measured (the
figures come from `make bench`; docs/BENCHMARKS.md and docs/PERFORMANCE-HISTORY.md have them).
Each piece is named exactly once, where it is wired in:

| piece | replaces | wired in |
|---|---|---|
| `handler.PooledASGIHandler` | Django's `ASGIHandler` for sync views | `bo1site/asgi.py` |
| `worker.FairUvicornWorker` | `uvicorn_worker.UvicornWorker` | Procfile `web:` (Dockerfile) |
| `db` (ENGINE `bo1site.serving.db`) | `django.db.backends.postgresql` | settings `DATABASES` |
| `negotiation.ContentNegotiation` | DRF's `DefaultContentNegotiation` | settings `REST_FRAMEWORK` |

Without them the service gives the same answers, only slower: `bo1site.asgi` could use
`get_asgi_application()`, the Procfile uvicorn's own worker, and settings Django's backend.
"""
