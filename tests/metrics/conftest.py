from tests.webhooks.conftest import endpoint, receiver  # noqa: F401
