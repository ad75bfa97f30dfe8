"""Token authentication answers exactly as DRF's does, and sees revocation at once."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bo1site.serving.authentication import TokenAuthentication
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/sessions"


def test_the_api_uses_the_prepared_token_authentication():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_AUTHENTICATION_CLASSES[0] is TokenAuthentication


def test_a_valid_token_authenticates_its_user(user):
    key = Token.objects.create(user=user).key
    found_user, token = TokenAuthentication().authenticate_credentials(key)
    assert (found_user.pk, found_user.username, found_user.is_active) == (user.pk, "alice", True)
    assert token.key == key and token.user == found_user
    assert found_user.check_password("secret-pass-123")  # every user column is loaded


def test_an_unknown_token_is_401_invalid_token(anon):
    anon.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = anon.get(SESSIONS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert response["WWW-Authenticate"] == "Token"


def test_a_deleted_token_is_refused_on_the_next_request(user):
    client = token_client(user)
    assert client.get(SESSIONS).status_code == 200
    Token.objects.filter(user=user).delete()
    assert client.get(SESSIONS).status_code == 401


def test_an_inactive_user_is_refused(user):
    client = token_client(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = client.get(SESSIONS)
    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


def test_malformed_headers_answer_as_drf_does(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token")
    assert client.get(SESSIONS).json() == {
        "detail": "Invalid token header. No credentials provided."
    }
    client.credentials(HTTP_AUTHORIZATION="Token a b")
    assert client.get(SESSIONS).json() == {
        "detail": "Invalid token header. Token string should not contain spaces."
    }
