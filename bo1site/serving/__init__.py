"""The request-path machinery: where this service serves requests differently from stock
Django, DRF and uvicorn, and why.

Everything here replaces or adjusts one framework piece for speed, keeps its answers the same,
and opens with what the stock piece does, what is changed, why, and what it measured (the
figures come from `make bench`; docs/BENCHMARKS.md and docs/PERFORMANCE-HISTORY.md have them).
Each piece, what it replaces, and where it is wired in:

- `handler.PooledASGIHandler`: Django's `ASGIHandler` for sync views; `bo1site/asgi.py`.
- `worker.FairUvicornWorker`: `uvicorn_worker.UvicornWorker`; the Procfile's `web:` line (and the
  Dockerfile).
- `db` (ENGINE `bo1site.serving.db`): `django.db.backends.postgresql`; settings `DATABASES`.
- `negotiation.ContentNegotiation`: DRF's `DefaultContentNegotiation`; settings `REST_FRAMEWORK`.
- `authentication.TokenAuthentication`: DRF's `TokenAuthentication` (the same lookup, compiled
  once); settings `REST_FRAMEWORK`.
- `jsoncodec.OrjsonRenderer`, `OrjsonCacheSerializer`: DRF's `JSONRenderer` and django-redis'
  JSON serializer; settings `REST_FRAMEWORK` and `CACHES`.
- `db.prepared.PreparedQuery`, `PreparedInsert`: a queryset's SQL built on every run; the
  store's hot queries (`sessions_app` services and selectors, the importer's inserts).

Without them the service gives the same answers, only slower: `bo1site.asgi` could use
`get_asgi_application()`, the Procfile uvicorn's own worker, settings Django's backend and DRF's
classes, and the hot queries plain querysets.
"""
