"""The dashboard's account page: download everything, or delete the account."""

import io
import json
import zipfile

import pytest
from django.contrib.auth.models import User
from django.test import Client

from sessions_app.models import DeliberationSession
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_account_page_links_the_export_which_works_with_the_login_cookie(browser, user):
    session = SessionFactory(user=user)
    page = browser.get("/account")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/api/v1/me/export"' in html
    assert "with 1 session." in html
    export = browser.get("/api/v1/me/export")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(export.streaming_content)))
    assert json.loads(archive.read("index.json"))["sessions"][0]["id"] == session.id


def test_a_wrong_username_deletes_nothing(browser, user):
    session = SessionFactory(user=user)
    response = browser.post("/account", {"confirm": "someone"})
    assert response.status_code == 400
    assert "Nothing was deleted" in response.content.decode()
    assert DeliberationSession.objects.filter(pk=session.pk).exists()
    assert User.objects.get(pk=user.pk).is_active


def test_deleting_the_account_logs_out_and_closes_the_account(
    browser, user, django_capture_on_commit_callbacks
):
    SessionFactory(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/account", {"confirm": "alice"}, follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert "being deleted" in response.content.decode()
    assert browser.get("/").status_code == 302  # logged out
    # The queued purge is the worker's; the account no longer works meanwhile.
    assert not User.objects.get(pk=user.pk).is_active
