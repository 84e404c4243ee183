"""Every way a caller can fail to authenticate gets 401 with a stable code; good tokens and staff
sessions map to the right chat identity."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from chatservice.authentication import TokenError, principal_from_token
from conversations.models import Conversation

pytestmark = pytest.mark.django_db

LIST = "/api/conversations"


def call(token_header: str | None) -> tuple[int, dict]:
    client = APIClient()
    if token_header is not None:
        client.credentials(HTTP_AUTHORIZATION=token_header)
    response = client.get(LIST)
    return response.status_code, response.json()


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_missing_header_is_401_with_challenge():
    response = APIClient().get(LIST)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer a b", "Basic dTpw"])
def test_malformed_header_is_401(header):
    status, body = call(header)
    assert (status, body["code"]) == (401, "token_invalid")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30."])
def test_malformed_token_is_401(token):
    status, body = call(f"Bearer {token}")
    assert (status, body["code"]) == (401, "token_invalid")


def test_expired_token_is_401_token_expired(make_token):
    status, body = call(f"Bearer {make_token(ttl=-120)}")
    assert (status, body["code"]) == (401, "token_expired")


def test_token_signed_with_another_key_is_401(make_token, other_keypair):
    status, body = call(f"Bearer {make_token(key=other_keypair[0])}")
    assert (status, body["code"]) == (401, "token_invalid")


def test_alg_none_is_401(make_token):
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': 'u1', 'role': 'ADMIN', 'exp': 9999999999})}."
    status, body = call(f"Bearer {unsigned}")
    assert (status, body["code"]) == (401, "token_invalid")


def test_hs256_signed_with_the_public_key_is_401(keypair):
    # Algorithm confusion: an attacker signs with the (public) verification key as an HMAC secret.
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64({"sub": "attacker", "role": "ADMIN", "exp": 9999999999})
    signature = hmac.new(keypair[1], f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    status, body = call(f"Bearer {token}")
    assert (status, body["code"]) == (401, "token_invalid")


def test_token_without_exp_is_401(keypair):
    token = jwt.encode({"sub": "u1", "role": "USER"}, keypair[0], algorithm="RS256")
    status, body = call(f"Bearer {token}")
    assert (status, body["code"]) == (401, "token_invalid")


@pytest.mark.parametrize("subject", [None, "", "   ", "x" * 129])
def test_token_without_usable_subject_is_401(make_token, subject):
    status, body = call(f"Bearer {make_token(sub=subject)}")
    assert (status, body["code"]) == (401, "token_invalid")


def test_refused_token_stores_nothing(make_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(ttl=-120)}")
    assert client.post(LIST, {"subject": "x"}, format="json").status_code == 401
    assert Conversation.objects.count() == 0


def test_sub_or_user_id_claim_names_the_user(make_token):
    assert principal_from_token(make_token("abc")).user_id == "abc"
    assert principal_from_token(make_token(sub=None, userId="from-user-id")).user_id == "from-user-id"


@pytest.mark.parametrize(
    ("claim", "role"),
    [
        ("ADMIN", "ADMIN"),
        ("SUPER_ADMIN", "ADMIN"),
        ("USER", "USER"),
        ("DONOR", "USER"),
        (None, "USER"),
        ("admin", "USER"),
        (["ADMIN"], "USER"),
        ({"ADMIN": True}, "USER"),
    ],
)
def test_role_mapping(make_token, claim, role):
    assert principal_from_token(make_token("x", claim)).role == role


def test_issuer_and_audience_are_enforced_when_configured(settings, make_token):
    settings.CHAT = {**settings.CHAT, "JWT_ISSUER": "auth-service", "JWT_AUDIENCE": "chat"}
    assert principal_from_token(make_token(iss="auth-service", aud="chat")).user_id == "u1"
    for bad in ({"iss": "evil", "aud": "chat"}, {"iss": "auth-service", "aud": "other"}, {}):
        with pytest.raises(TokenError):
            principal_from_token(make_token(**bad))


def test_audience_in_token_is_ignored_when_not_configured(make_token):
    assert principal_from_token(make_token(aud="anything")).user_id == "u1"


def test_valid_token_reaches_the_api(donor):
    assert donor.get(LIST).status_code == 200


def test_staff_session_acts_as_admin_named_by_username(conversation):
    staff = User.objects.create_user("maria", password="pw-123456", is_staff=True)
    client = APIClient()
    client.force_login(staff)
    response = client.get(LIST)
    assert response.status_code == 200
    assert [c["conversationId"] for c in response.json()["results"]] == [conversation.pk]  # admins see all
    # Staff session writes are CSRF-protected; with the token they work and act as "staff:maria" (a
    # namespace no Auth Service subject can take).
    csrf_client = APIClient(enforce_csrf_checks=True)
    csrf_client.force_login(staff)
    assert csrf_client.post(f"{LIST}/{conversation.pk}/assign", {}, format="json").status_code == 403
    assert client.post(f"{LIST}/{conversation.pk}/assign", {}, format="json").status_code == 200
    assert conversation.participants.filter(user_id="staff:maria", role="ADMIN").exists()


def test_non_staff_session_is_not_authenticated():
    user = User.objects.create_user("bob", password="pw-123456")
    client = APIClient()
    client.force_login(user)
    assert client.get(LIST).status_code == 401


def test_browsable_api_renders_for_staff(conversation):
    staff = User.objects.create_user("maria", password="pw-123456", is_staff=True)
    client = APIClient()
    client.force_login(staff)
    for path in (LIST, f"{LIST}/{conversation.pk}", f"{LIST}/{conversation.pk}/messages"):
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert b"Refund" in response.content or path.endswith("messages")
