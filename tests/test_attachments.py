"""Attachments: uploads checked by content, images cleaned, downloads for participants only or by a short-lived
signed link, FILE messages that reference an upload, erasure. (Scanning: test_attachment_scanning.py; limits
at the HTTP layer, with a real server: test_attachment_limits.py.)"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from PIL import ExifTags, Image

from attachments.models import Attachment
from attachments.services import attachment_storage
from conversations import services as conversation_services
from conversations.models import Conversation
from messaging.models import Message
from tests.helpers import USER, snapshot
from tests.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)

# A Windows executable's first bytes ("MZ" and the DOS stub), then padding: what a renamed .exe starts with.
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"This program cannot be run"
PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def jpeg_with_gps(size: tuple[int, int] = (64, 48), orientation: int | None = None) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (23.0, 48.0, 36.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (90.0, 24.0, 36.0),
    }
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def receipt_photo(size: tuple[int, int] = (640, 420)) -> bytes:
    """A JPEG that looks like a photographed receipt (for screenshots), with a GPS position in its EXIF."""
    from PIL import ImageDraw

    image = Image.new("RGB", size, (214, 204, 186))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w * 0.2, h * 0.08, w * 0.8, h * 0.95), fill=(250, 250, 246), outline=(180, 180, 170))
    draw.text((w * 0.26, h * 0.14), "CAREFORALL  DONATION RECEIPT", fill=(30, 30, 30))
    for row in range(9):
        y = h * (0.25 + row * 0.07)
        draw.line((w * 0.26, y, w * (0.5 + (row % 3) * 0.08), y), fill=(120, 120, 120), width=3)
        draw.line((w * 0.66, y, w * 0.74, y), fill=(120, 120, 120), width=3)
    draw.text((w * 0.26, h * 0.88), "TOTAL  BDT 5,000", fill=(20, 20, 20))
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (23.0, 48.0, 36.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def png(size: tuple[int, int] = (32, 32), mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


def upload(client, conversation_id: str, data: bytes, name: str = "file.bin", content_type: str = "application/pdf"):
    """A multipart upload; the declared content type is whatever the client claims (never trusted)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/api/conversations/{conversation_id}/attachments",
        {"file": SimpleUploadedFile(name, data, content_type=content_type)},
        format="multipart",
    )


def stored_files() -> list[Path]:
    root = Path(settings.STORAGES["attachments"]["OPTIONS"]["location"])
    return sorted(p for p in root.rglob("*") if p.is_file())


def download(client, url: str):
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


@pytest.fixture(autouse=True)
def empty_storage() -> None:
    """The database is emptied between tests; so is the storage, so that counting files means this test's."""
    for path in stored_files():
        path.unlink()


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    return conversation_services.conversation_create(creator=USER, subject="Receipt")


def test_an_image_comes_back_without_its_gps_exif_and_with_a_thumbnail(donor, conversation):
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the upload has a position
    response = upload(donor, conversation.pk, original, "holiday.jpg", "image/jpeg")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["contentType"] == "image/jpeg" and body["name"] == "holiday.jpg"
    assert (body["width"], body["height"]) == (64, 48)
    assert body["url"].endswith(f"/api/attachments/{body['attachmentId']}")

    got, data = download(donor, f"/api/attachments/{body['attachmentId']}")
    assert got.status_code == 200 and got["Content-Type"] == "image/jpeg"
    assert got["X-Content-Type-Options"] == "nosniff"
    assert got["Content-Disposition"].startswith("inline")
    cleaned = Image.open(io.BytesIO(data))
    assert not cleaned.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert len(cleaned.getexif()) == 0 and b"Exif" not in data and b"PhoneMaker" not in data
    assert len(data) == body["size"]

    thumb, thumb_data = download(donor, f"/api/attachments/{body['attachmentId']}?variant=thumbnail")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(thumb_data)).format == "WEBP"


def test_an_image_is_turned_upright_before_its_exif_goes(donor, conversation):
    # Orientation 6: the camera was turned; the pixels are stored 64x48 and shown 48x64.
    body = upload(donor, conversation.pk, jpeg_with_gps(orientation=6), "turned.jpg", "image/jpeg").json()
    assert (body["width"], body["height"]) == (48, 64)


def test_a_renamed_executable_is_415_and_nothing_is_stored(donor, conversation):
    before = snapshot(conversation)
    response = upload(donor, conversation.pk, EXE_BYTES, "receipt.pdf", "application/pdf")
    assert response.status_code == 415
    assert response.json()["code"] == "attachment_type_unsupported"
    assert Attachment.objects.count() == 0 and stored_files() == []
    assert snapshot(conversation) == before


@pytest.mark.parametrize(
    ("data", "name", "expected_type", "expected_name", "disposition"),
    [
        (PDF_BYTES, "statement.pdf", "application/pdf", "statement.pdf", "attachment"),
        ("Donation ref 1234, merci \u00e0 vous\n".encode(), "notes", "text/plain", "notes.txt", "attachment"),
        (png(), "receipt.pdf", "image/png", "receipt.pdf.png", "inline"),  # the name cannot make a PNG a PDF
        (PDF_BYTES, "../../etc/\u202egpj.pdf", "application/pdf", "gpj.pdf", "attachment"),
    ],
)
def test_the_type_comes_from_the_content_and_the_name_is_made_safe(
    donor, conversation, data, name, expected_type, expected_name, disposition
):
    body = upload(donor, conversation.pk, data, name, "application/octet-stream").json()
    assert (body["contentType"], body["name"]) == (expected_type, expected_name)
    got, content = download(donor, f"/api/attachments/{body['attachmentId']}")
    assert got["Content-Disposition"].startswith(disposition)
    assert got["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got["Content-Security-Policy"]
    if expected_type == "text/plain":
        assert got["Content-Type"] == "text/plain; charset=utf-8" and content == data


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (png((10_000, 10_000), mode="1"), "attachment_image_too_large", 422),  # 100 MP in a few KB: a bomb
        (jpeg_with_gps()[:300], "attachment_unreadable", 422),  # a JPEG cut short
        (b"\x00\x01binary\x02", "attachment_type_unsupported", 415),
    ],
)
def test_bad_images_and_unknown_bytes_are_refused_and_nothing_is_stored(donor, conversation, data, code, status):
    before = snapshot(conversation)
    response = upload(donor, conversation.pk, data, "x.png", "image/png")
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert Attachment.objects.count() == 0 and stored_files() == []
    assert snapshot(conversation) == before


def test_an_upload_over_the_limit_is_413_and_nothing_is_stored(donor, conversation, settings):
    settings.CHAT = {**settings.CHAT, "ATTACHMENT_MAX_BYTES": 1024}
    response = upload(donor, conversation.pk, b"a" * 1025, "big.txt", "text/plain")
    assert response.status_code == 413 and response.json()["code"] == "attachment_too_large"
    assert Attachment.objects.count() == 0 and stored_files() == []
    assert upload(donor, conversation.pk, b"a" * 1024, "fits.txt", "text/plain").status_code == 201


def test_a_body_without_a_file_part_is_400(donor, conversation):
    response = donor.post(f"/api/conversations/{conversation.pk}/attachments", {"other": "x"}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "file_required"


def test_only_participants_upload_and_download(donor, stranger, agent, conversation):
    assert upload(stranger, conversation.pk, PDF_BYTES).status_code == 404
    attachment_id = upload(donor, conversation.pk, PDF_BYTES).json()["attachmentId"]
    url = f"/api/attachments/{attachment_id}"
    # Until a message shares it, an upload is the uploader's draft: nobody else, staff included, may fetch it.
    assert download(donor, url)[0].status_code == 200
    for other in (stranger, agent):
        assert other.get(url).json()["code"] == "attachment_not_found"
    sent = donor.post(
        f"/api/conversations/{conversation.pk}/messages",
        {"content": "my receipt", "messageType": "FILE", "metadata": {"attachmentId": attachment_id}},
        format="json",
    )
    assert sent.status_code == 201
    assert download(agent, url)[0].status_code == 200  # staff: any conversation
    assert stranger.get(url).status_code == 404  # another donor: never
    assert stranger.get(f"{url}/link").status_code == 404
    assert agent.get("/api/attachments/att_doesnotexist").status_code == 404


def test_a_file_message_is_described_by_the_server(donor, agent, conversation):
    uploaded = upload(donor, conversation.pk, png(), "scan.png", "image/png").json()
    sent = donor.post(
        f"/api/conversations/{conversation.pk}/messages",
        {
            "content": "scan",
            "messageType": "FILE",
            # What the client says about the file is replaced; its other keys stay.
            "metadata": {"attachmentId": uploaded["attachmentId"], "name": "evil.exe", "size": 1, "note": "front"},
        },
        format="json",
    )
    assert sent.status_code == 201, sent.content
    metadata = sent.json()["metadata"]
    assert metadata["name"] == "scan.png" and metadata["contentType"] == "image/png"
    assert metadata["size"] == uploaded["size"] and metadata["note"] == "front"
    assert metadata["url"] == f"/api/attachments/{uploaded['attachmentId']}"  # relative to the service
    assert "thumbnailUrl" in metadata
    history = agent.get(f"/api/conversations/{conversation.pk}/messages").json()["results"]
    assert history[-1]["metadata"] == metadata
    # External files keep working as before.
    external = donor.post(
        f"/api/conversations/{conversation.pk}/messages",
        {"content": "x", "messageType": "FILE", "metadata": {"url": "https://files.example/a.pdf", "name": "a.pdf"}},
        format="json",
    )
    assert external.status_code == 201


def test_a_file_message_cannot_reference_an_upload_it_may_not_use(client_for, donor, agent, conversation):
    other = conversation_services.conversation_create(creator=USER, subject="Other")
    elsewhere = upload(donor, other.pk, PDF_BYTES).json()["attachmentId"]
    by_staff = upload(agent, conversation.pk, PDF_BYTES).json()["attachmentId"]
    before = snapshot(conversation)
    for attachment_id in (elsewhere, by_staff, "att_nothing"):
        response = donor.post(
            f"/api/conversations/{conversation.pk}/messages",
            {"content": "x", "messageType": "FILE", "metadata": {"attachmentId": attachment_id}},
            format="json",
        )
        assert response.status_code == 404 and response.json()["code"] == "attachment_not_found"
    assert snapshot(conversation) == before
    # An id of another shape is not a reference at all.
    bad = donor.post(
        f"/api/conversations/{conversation.pk}/messages",
        {"content": "x", "messageType": "FILE", "metadata": {"attachmentId": "a/b"}},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["code"] == "file_metadata_required"


@pytest.mark.asyncio
async def test_over_the_websocket_a_reference_is_described_or_refused_and_nothing_leaks(conversation, make_token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('u1')}")
    other = await sync_to_async(conversation_services.conversation_create)(creator=USER, subject="Other")
    mine = (await sync_to_async(upload)(client, conversation.pk, PDF_BYTES, "r.pdf")).json()["attachmentId"]
    elsewhere = (await sync_to_async(upload)(client, other.pk, PDF_BYTES)).json()["attachmentId"]
    donor = await connect(conversation.pk, make_token("u1"))
    staff = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await donor.send(
        {"type": "message", "content": "x", "messageType": "FILE", "metadata": {"attachmentId": elsewhere}}
    )
    assert (await donor.expect("error"))["code"] == "attachment_not_found"
    await staff.assert_alive_and_quiet()  # nothing was broadcast
    assert await sync_to_async(Message.objects.count)() == 0
    await donor.send({"type": "message", "content": "r", "messageType": "FILE", "metadata": {"attachmentId": mine}})
    received = await staff.expect("message_received")
    assert received["metadata"]["name"] == "r.pdf" and received["metadata"]["contentType"] == "application/pdf"
    await donor.close()
    await staff.close()


def test_a_signed_link_works_without_credentials_until_it_expires(donor, client, conversation):
    attachment_id = upload(donor, conversation.pk, png(), "a.png", "image/png").json()["attachmentId"]
    link = donor.get(f"/api/attachments/{attachment_id}/link").json()
    assert "Bearer" not in link["url"] and "eyJ" not in link["url"]  # no JWT in the link
    assert client.get(f"/api/attachments/{attachment_id}").status_code == 401  # no credentials, no link
    for url in (link["url"], link["thumbnailUrl"]):
        got, _ = download(client, url)
        assert got.status_code == 200 and got["Cache-Control"].startswith("private")
    # A signature is for one attachment and one variant.
    original_sig = link["url"].split("sig=")[1]
    assert client.get(f"/api/attachments/{attachment_id}?variant=thumbnail&sig={original_sig}").status_code == 404
    assert client.get(f"/api/attachments/{attachment_id}?sig={original_sig[:-2]}xx").status_code == 404
    later = time.time() + settings.CHAT["ATTACHMENT_LINK_TTL_S"] + 1
    with mock.patch("django.core.signing.time.time", return_value=later):
        expired = client.get(link["url"])
    assert expired.status_code == 403 and expired.json()["code"] == "attachment_link_expired"


def test_an_archived_conversation_takes_no_uploads(donor, agent, conversation):
    agent.put(f"/api/conversations/{conversation.pk}", {"status": "ARCHIVED"}, format="json")
    response = upload(donor, conversation.pk, PDF_BYTES)
    assert response.status_code == 409 and response.json()["code"] == "conversation_closed"
    assert stored_files() == []


def test_erasing_a_donor_deletes_their_attachments_and_files(donor, agent, conversation):
    from conversations.services import user_erase

    mine = upload(donor, conversation.pk, png(), "a.png", "image/png").json()["attachmentId"]
    staff_file = upload(agent, conversation.pk, PDF_BYTES).json()["attachmentId"]
    assert len(stored_files()) == 3  # the image, its thumbnail, the staff member's PDF
    erasure = user_erase(user_id="u1", role="USER")
    assert erasure.attachments_deleted == 1
    assert list(Attachment.objects.values_list("pk", flat=True)) == [staff_file]
    assert [p.parent.name for p in stored_files()] == [staff_file]
    assert agent.get(f"/api/attachments/{mine}").status_code == 404


def test_stored_files_are_private_to_the_service(donor, conversation):
    upload(donor, conversation.pk, PDF_BYTES)
    (path,) = stored_files()
    assert os.stat(path).st_mode & 0o077 == 0


def gif_with_a_huge_second_frame() -> bytes:
    """A 2-frame GIF whose header and first frame say 1x1 and whose second frame claims 65535x65535: Pillow
    grows the image to a later frame's size, so decoding frames past the first would allocate gigabytes."""
    header = b"GIF89a" + (1).to_bytes(2, "little") * 2 + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"

    def frame(width: int, height: int) -> bytes:
        descriptor = (
            b"\x2c" + b"\x00\x00\x00\x00" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x00"
        )
        return b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + descriptor + b"\x02\x02\x44\x01\x00"

    return header + loop + frame(1, 1) + frame(65535, 65535) + b"\x3b"


def test_an_animation_is_stored_as_its_first_frame_and_never_decodes_past_it(donor, conversation):
    data = gif_with_a_huge_second_frame()
    assert Image.open(io.BytesIO(data)).n_frames == 2
    response = upload(donor, conversation.pk, data, "anim.gif", "image/gif")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["width"], body["height"]) == (1, 1)
    _, stored = download(donor, f"/api/attachments/{body['attachmentId']}")
    assert getattr(Image.open(io.BytesIO(stored)), "n_frames", 1) == 1


def test_an_erasure_that_cannot_delete_a_file_keeps_its_row_and_a_rerun_completes(donor, conversation):
    from conversations.services import user_erase

    upload(donor, conversation.pk, png(), "a.png", "image/png")
    storage_class = type(attachment_storage())
    with mock.patch.object(storage_class, "delete", side_effect=OSError("disk gone")), pytest.raises(OSError):
        user_erase(user_id="u1", role="USER")
    assert Attachment.objects.count() == 1 and len(stored_files()) == 2  # still findable, still there
    assert user_erase(user_id="u1", role="USER").attachments_deleted == 1
    assert Attachment.objects.count() == 0 and stored_files() == []


def test_renaming_a_person_moves_their_uploads(agent, conversation):
    from conversations.models import Participant
    from conversations.renaming import rename_person

    attachment_id = upload(agent, conversation.pk, PDF_BYTES).json()["attachmentId"]
    renamed = rename_person(
        old="agent1",
        new="agent-one",
        role="ADMIN",
        conversation_model=Conversation,
        participant_model=Participant,
        message_model=Message,
        attachment_model=Attachment,
    )
    assert renamed.attachments == 1
    assert Attachment.objects.get(pk=attachment_id).uploader_id == "agent-one"
