"""Attachments on the donor page, in real Chromium against a real Daphne worker: the paperclip and drag and
drop upload with a progress bar, images come back as thumbnails without their GPS EXIF, other files as chips
that download, a refused file says why and leaves nothing behind."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
from PIL import ExifTags, Image
from playwright.sync_api import expect

from tests import browser as kit
from tests.test_attachments import EXE_BYTES, PDF_BYTES, jpeg_with_gps, receipt_photo
from tests.test_browser_donor import AGENT, DONOR, bubbles, new_conversation, open_chat, staff_socket, stored

browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page


def file_payload(name: str, data: bytes, mime: str) -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def test_an_image_goes_up_with_progress_and_comes_back_clean(chat_server, new_page):
    conversation = new_conversation(chat_server, "Photo of my receipt")
    page = new_page()
    open_chat(page, chat_server, conversation)
    with staff_socket(chat_server, conversation) as staff:
        page.locator("#file").set_input_files(
            files=[file_payload("receipt.jpg", jpeg_with_gps((400, 300)), "image/jpeg")]
        )
        frame = staff.next(lambda f: f.get("type") == "message_received")
    assert frame["messageType"] == "FILE" and frame["metadata"]["contentType"] == "image/jpeg"
    image = bubbles(page).last.locator(".file-image img")
    expect(image).to_have_attribute("src", re.compile(r"/api/attachments/att_\w+\?variant=thumbnail&sig="))
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0
    expect(image).to_have_attribute("alt", "receipt.jpg")
    expect(bubbles(page).last).to_have_attribute("data-status", re.compile("sent|read"))
    # What staff download has no position in it.
    original = httpx.get(
        f"{chat_server.url}/api/attachments/{frame['metadata']['attachmentId']}",
        headers={"Authorization": f"Bearer {chat_server.mint(AGENT, 'ADMIN')}"},
    )
    assert not Image.open(io.BytesIO(original.content)).getexif().get_ifd(ExifTags.IFD.GPSInfo)


def test_a_dropped_pdf_becomes_a_chip_that_downloads(chat_server, new_page):
    conversation = new_conversation(chat_server, "Bank statement")
    page = new_page()
    open_chat(page, chat_server, conversation)
    # A real drop: a DataTransfer holding a File, dispatched as the browser would.
    page.evaluate(
        """([bytes, name]) => {
            const file = new File([new Uint8Array(bytes)], name, { type: "application/pdf" });
            const data = new DataTransfer();
            data.items.add(file);
            const target = document.getElementById("messages");
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
            }
        }""",
        [list(PDF_BYTES), "statement.pdf"],
    )
    chip = bubbles(page).last.locator(".file-chip")
    expect(chip.locator(".file-name")).to_have_text("statement.pdf")
    expect(chip.locator(".file-size")).to_have_text(f"{len(PDF_BYTES)} bytes")
    expect(chip).to_have_attribute("href", re.compile(r"sig="))
    with page.expect_download() as download:
        chip.click()
    assert download.value.suggested_filename == "statement.pdf"
    assert Path(download.value.path()).read_bytes() == PDF_BYTES
    assert [m["messageType"] for m in stored(chat_server, conversation)] == ["FILE"]


def test_a_refused_file_says_why_and_leaves_nothing(chat_server, new_page):
    conversation = new_conversation(chat_server, "Not a receipt")
    page = new_page()
    open_chat(page, chat_server, conversation)
    page.locator("#file").set_input_files(files=[file_payload("receipt.pdf", EXE_BYTES, "application/pdf")])
    expect(page.locator("#alert")).to_contain_text("“receipt.pdf” was not sent")
    expect(page.locator("#alert")).to_contain_text("not accepted")
    expect(bubbles(page)).to_have_count(0)
    assert stored(chat_server, conversation) == []


def test_files_from_support_show_as_thumbnails_and_chips(chat_server, new_page):
    conversation = new_conversation(chat_server, "Your documents")
    for name, data, mime in (
        ("tax-receipt.pdf", PDF_BYTES, "application/pdf"),
        ("receipt.jpg", receipt_photo(), "image/jpeg"),
    ):
        uploaded = chat_server.api(
            "POST", f"/api/conversations/{conversation}/attachments", AGENT, "ADMIN", files={"file": (name, data, mime)}
        )
        assert uploaded.status_code == 201, uploaded.text
        sent = chat_server.api(
            "POST",
            f"/api/conversations/{conversation}/messages",
            AGENT,
            "ADMIN",
            json={
                "content": f"Here is {name}",
                "messageType": "FILE",
                "metadata": {"attachmentId": uploaded.json()["attachmentId"]},
            },
        )
        assert sent.status_code == 201, sent.text
    chat_server.api("POST", f"/api/conversations/{conversation}/messages", DONOR, json={"content": "Thank you!"})
    for width, name in ((1280, "donor-attachments"), (360, "donor-attachments-360")):
        page = new_page(width=width, height=800)
        open_chat(page, chat_server, conversation)
        expect(page.locator(".file-chip .file-name")).to_have_text("tax-receipt.pdf")
        image = page.locator(".file-image img")
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") > 0
        expect(page.locator(".content").filter(has_text="Here is receipt.jpg")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        kit.document(page, name)
