"""`make demo`'s seeding (manage.py seed_demo) and its logged-in console link. Browser test of the printed
links: tests/test_browser_demo.py."""

from __future__ import annotations

import io
import re
import stat
from datetime import timedelta

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.management import CommandError, call_command
from django.db.models import Max
from django.test import Client
from django.utils import timezone

from conversations.models import Conversation, ConversationStatus, Participant
from csat.models import CsatResponse
from demo import seed
from demo.login import LOGIN_LINK_SALT
from desk.models import AgentProfile
from messaging.models import Message, MessageType

pytestmark = pytest.mark.django_db

BASE = "http://127.0.0.1:3006"
LINK = re.compile(r"^(Console, logged in \(single use, 15 min\)|Donor page, as donor-amina|Reports): (\S+)$")


@pytest.fixture
def demo_settings(settings, keypair, tmp_path):
    """Development mode, with the suite's key pair as the development key (the suite trusts its public half)."""
    key = tmp_path / "dev_jwt_private.pem"
    key.write_bytes(keypair[0])
    settings.DEBUG = True
    settings.CHAT = {**settings.CHAT, "DEV_PRIVATE_KEY_PATH": key}
    return settings


def run_seed(tmp_path) -> tuple[str, dict[str, str]]:
    out = io.StringIO()
    call_command("seed_demo", "--base-url", BASE, "--password-file", str(tmp_path / "pw"), stdout=out)
    text = out.getvalue()
    last = text.splitlines()[-3:]
    links = {match.group(1).split(",")[0].split(" (")[0]: match.group(2) for match in map(LINK.match, last) if match}
    assert len(links) == 3, text  # exactly three links, at the end
    return text, links


def counts() -> dict[str, int]:
    models = (Conversation, Participant, Message, CsatResponse, AgentProfile, get_user_model())
    return {model.__name__: model.objects.count() for model in models}


def test_a_second_run_creates_nothing_and_prints_fresh_links(demo_settings, tmp_path):
    first, _ = run_seed(tmp_path)
    assert "Demo data: created 37 conversations of 6 donors." in first
    before = counts()
    second, again = run_seed(tmp_path)
    assert "Demo data already here (37 conversations): nothing created." in second
    assert counts() == before
    assert again["Reports"] == f"{BASE}/admin/reports/"
    password = re.search(r'password "([^"]+)"', first).group(1)
    assert f'password "{password}"' in second  # kept: stable across runs
    assert stat.S_IMODE((tmp_path / "pw").stat().st_mode) == 0o600
    assert get_user_model().objects.get(username="demo").check_password(password)


def test_every_state_is_there(demo_settings, tmp_path):
    run_seed(tmp_path)
    seeded = Conversation.objects.filter(created_by__in=seed.DONORS)
    active = seeded.filter(status=ConversationStatus.ACTIVE)
    assert 30 <= seeded.count() <= 40
    # Waiting: the donor's last message unanswered; some nobody assigned, some assigned and unread.
    assert active.filter(waiting_since__isnull=False, admin_count=0).count() == 3
    unread = [
        c
        for c in active.filter(waiting_since__isnull=False, admin_count=1)
        if Participant.objects.get(conversation=c, assigned=True).last_read_seq < c.last_seq
    ]
    assert len(unread) == 2
    # Answered, first responses from minutes to over an hour.
    delays = [c.first_response_at - c.created_at for c in seeded.filter(first_response_at__isnull=False)]
    assert min(delays) < timedelta(minutes=5) and sum(d > timedelta(hours=1) for d in delays) >= 5
    # Closed and rated, 1 to 5, with comments.
    ratings = CsatResponse.objects.filter(conversation__in=seeded)
    assert {r.rating for r in ratings} == {1, 2, 3, 4, 5} and ratings.exclude(comment="").count() >= 2
    assert all(c.csat and c.closed_at for c in seeded.filter(csat_responses__isnull=False))
    assert seeded.filter(status=ConversationStatus.ARCHIVED).exists()
    noted = seeded.get(last_note_seq__gt=0)
    assert noted.labels == ["billing", "receipt"] and noted.admin_count == 1
    assert Message.objects.filter(conversation=noted, message_type=MessageType.NOTE).exists()
    # Spread over the last four weeks, nothing in the future.
    now = timezone.now()
    assert {(now - c.created_at).days for c in seeded} >= set(range(seed.HISTORY_DAYS))
    assert not Message.objects.filter(created_at__gt=now).exists()


def test_the_clocks_are_the_services_own(demo_settings, tmp_path):
    run_seed(tmp_path)
    for conversation in Conversation.objects.filter(created_by__in=seed.DONORS):
        messages = Message.objects.filter(conversation=conversation)
        last = messages.aggregate(Max("created_at"))["created_at__max"]
        assert conversation.last_seq == messages.count()
        assert conversation.last_message_at == last
        assert conversation.updated_at >= last >= conversation.created_at
        times = list(messages.order_by("seq").values_list("created_at", flat=True))
        assert times == sorted(times)  # seq order is time order
        if conversation.first_response_at:
            first = messages.filter(sender_role="ADMIN", message_type="TEXT").order_by("seq").first()
            assert conversation.first_response_at == first.created_at
        for rating in CsatResponse.objects.filter(conversation=conversation):
            assert rating.closed_at <= rating.created_at <= timezone.now()


def test_the_console_link_logs_in_once(demo_settings, tmp_path):
    _, links = run_seed(tmp_path)
    path = links["Console"].removeprefix(BASE)
    client = Client()
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == "/admin/desk/"
    assert client.get("/admin/desk/").status_code == 200
    spent = Client().get(path)  # used: the ordinary login page, logged out
    assert spent.status_code == 302 and spent["Location"].startswith("/admin/login/")
    assert Client().get("/admin/desk/").status_code == 302


@pytest.mark.parametrize("forge", ["text", "public_key_only", "other_user"])
def test_a_forged_console_link_does_not_log_in(demo_settings, tmp_path, forge):
    run_seed(tmp_path)
    demo = get_user_model().objects.get(username="demo")
    token = {
        "text": "forged",
        # Development's SECRET_KEY is public: a signature without the account's password hash is a forgery.
        "public_key_only": signing.TimestampSigner(salt=LOGIN_LINK_SALT).sign(str(demo.pk)),
        "other_user": signing.TimestampSigner(salt=f"{LOGIN_LINK_SALT}:{demo.pk}::").sign(str(demo.pk)),
    }[forge]
    client = Client()
    assert client.get(f"/admin/demo-login/{token}/")["Location"].startswith("/admin/login/")
    assert client.get("/admin/desk/").status_code == 302


def test_an_expired_console_link_does_not_log_in(demo_settings, tmp_path, monkeypatch):
    _, links = run_seed(tmp_path)
    monkeypatch.setattr("demo.login.LOGIN_LINK_MAX_AGE_S", -1)
    response = Client().get(links["Console"].removeprefix(BASE))
    assert response["Location"].startswith("/admin/login/")


def test_the_console_link_does_not_exist_without_debug(demo_settings, tmp_path):
    _, links = run_seed(tmp_path)
    demo_settings.DEBUG = False
    response = Client().get(links["Console"].removeprefix(BASE))
    assert response.status_code == 404
    assert Client().get("/admin/desk/").status_code == 302  # not logged in


def test_the_donor_link_identifies_a_seeded_donor(demo_settings, tmp_path, keypair):
    _, links = run_seed(tmp_path)
    path, _, fragment = links["Donor page"].removeprefix(BASE).partition("#")
    assert path == "/chat/"
    params = dict(part.split("=", 1) for part in fragment.split("&"))
    claims = jwt.decode(params["token"], keypair[1], algorithms=["RS256"])
    assert claims["sub"] in seed.DONORS and claims["role"] == "USER"
    conversation = Conversation.objects.get(pk=params["conversation"])
    assert conversation.created_by == claims["sub"] and conversation.status == ConversationStatus.ACTIVE


def test_seeding_refuses_production(settings, tmp_path):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="development only"):
        call_command("seed_demo", "--password-file", str(tmp_path / "pw"))
    assert not Conversation.objects.exists()


def test_seeding_needs_the_development_key(demo_settings, tmp_path):
    demo_settings.CHAT = {**demo_settings.CHAT, "DEV_PRIVATE_KEY_PATH": None}
    with pytest.raises(CommandError, match="needs the development key pair"):
        call_command("seed_demo", "--password-file", str(tmp_path / "pw"))


@pytest.mark.parametrize("url", ["127.0.0.1:3006", "http://", "http://h/path", "http://h/?q=1", "javascript:x"])
def test_seeding_refuses_a_base_url_that_is_not_one(demo_settings, tmp_path, url):
    with pytest.raises(CommandError, match="is not a base URL"):
        call_command("seed_demo", "--base-url", url, "--password-file", str(tmp_path / "pw"))
