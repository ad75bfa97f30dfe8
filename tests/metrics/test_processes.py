"""Metrics of the real servers: gunicorn's workers added up in multiprocess mode, open event
streams counted, and the Celery worker's own endpoint on BO1_WORKER_METRICS_PORT."""

import socket
import threading
import time
import urllib.request

import httpx
import pytest
from rest_framework.authtoken.models import Token

from sessions_app.models import Status
from tests.deliberation.test_worker import create_and_start, row, wait_until
from tests.factories import SessionFactory
from tests.metrics.scrape import parse, value
from tests.processes import free_port, start_web, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def scrape(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return parse(answer.read().decode())


def test_the_production_server_adds_up_every_worker_process_and_counts_open_streams(user, tmp_path):
    stale = tmp_path / "counter_999999.db"
    stale.write_bytes(b"left over by an earlier run")
    web, base = start_web(workers=2, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    try:
        wait_until(lambda: len(web.children()) >= 2, timeout=30, what="two workers")
        _, before = scrape(f"{base}/metrics")
        assert not stale.exists()  # emptied when the server started
        # Keep-alive off: each request lands on either process. Each process writes its own
        # file; go on until both have served some.
        files = [tmp_path / f"counter_{pid}.db" for pid in web.children()]
        sent = 0
        while sent < 40 or (not all(f.exists() for f in files) and sent < 400):
            with urllib.request.urlopen(f"{base}/api/health", timeout=30) as answer:
                assert answer.status == 200
            sent += 1
        assert all(f.exists() for f in files), "one process served no request"
        _, after = scrape(f"{base}/metrics")
        health = {"route": "api/health", "status": "200"}
        counted = value(after, "bo1_http_requests_total", **health) - value(
            before, "bo1_http_requests_total", **health
        )
        assert counted == sent  # whichever process answers the scrape adds up both

        session = SessionFactory(user=user)  # created, never started: its stream stays open
        token = Token.objects.create(user=user).key
        opened = threading.Event()
        done = threading.Event()

        def follow():
            headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
            url = f"{base}/api/v1/sessions/{session.id}/stream"
            with httpx.stream("GET", url, headers=headers, timeout=30) as stream:
                assert stream.status_code == 200
                opened.set()
                done.wait(30)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert opened.wait(15)
        wait_until(
            lambda: value(scrape(f"{base}/metrics")[1], "bo1_sse_streams_open") == 1,
            timeout=10,
            what="one open stream",
        )
        done.set()
        reader.join(10)
        wait_until(
            lambda: value(scrape(f"{base}/metrics")[1], "bo1_sse_streams_open") == 0,
            timeout=10,
            what="the stream closed",
        )
    finally:
        web.stop()
    assert "Traceback" not in web.log()


def test_the_worker_serves_its_own_metrics_and_they_move_as_a_session_runs(api):
    port = free_port()
    worker = start_worker(BO1_WORKER_METRICS_PORT=str(port), BO1_METRICS_TOKEN="w0rker")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: "Worker metrics on" in worker.log(), timeout=20, what="endpoint")
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(url)
        assert refused.value.code == 401
        _, before = scrape(url, token="w0rker")
        session_id = create_and_start(api, max_rounds=2)
        wait_until(lambda: row(session_id).status == Status.COMPLETED, what="completed")
        time.sleep(0.5)
        _, after = scrape(url, token="w0rker")
    finally:
        worker.stop()
    assert value(after, "bo1_llm_requests_total", outcome="ok") > value(
        before, "bo1_llm_requests_total", outcome="ok"
    )
    assert value(after, "bo1_session_transitions_total", to="completed") == 1
    assert value(after, "bo1_session_transitions_total", to="running") == 1
    assert value(after, "bo1_deliberation_duration_seconds_count", outcome="completed") == 1
    assert value(after, "bo1_deliberations_running") == 0
    assert value(after, "bo1_llm_tokens_total", kind="output") > 0


def test_the_worker_serves_no_metrics_when_the_port_is_unset():
    worker = start_worker()
    try:
        assert "Worker metrics on" not in worker.log()
    finally:
        worker.stop()


def test_a_worker_whose_metrics_port_is_taken_says_so_and_still_runs(api):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    worker = start_worker(BO1_WORKER_METRICS_PORT=str(port))
    try:
        wait_until(lambda: "Worker metrics not served" in worker.log(), timeout=20, what="log")
        session_id = create_and_start(api, max_rounds=1)
        wait_until(lambda: row(session_id).status == Status.COMPLETED, what="completed")
    finally:
        worker.stop()
        taken.close()
