"""The web chat page in real Chromium: sign in, upload, ask, open a citation, thumbs (SVG icons) and a
correction → feedback stored.

The service runs in-process under uvicorn on loopback, over a real catalog and LanceDB index, with
DummyLM answers (citing passage 1) and a hashing embedder, so the test is about the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.assistant import Assistant
from flywheel.config import Settings, load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.serve.app import create_app
from flywheel.stores.feedback import FeedbackStore
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.unit.serve_helpers import HashEmbedder, serving

DEICING = b"# De-icing\n\nType IV fluid holdover time in light snow is 40 minutes at -3 C.\n"
ANSWER = {"reasoning": "r", "answer": "The holdover time is 40 minutes.", "citations": [1], "found": True}


@dataclass
class Served:
    url: str
    key: str
    settings: Settings


@pytest.fixture
def served(flywheel_home) -> Iterator[Served]:
    # The stub LM's answer is what the page must show: generate it rather than quote the passage.
    settings = load_settings(serve={"reload_interval_s": 0}, programs={"answer_style": "generate"})
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    lm = DummyLM([ANSWER] * 20, adapter=dspy.JSONAdapter())
    app = create_app(settings, assistant=Assistant(settings, knowledge=kb), lm=lm, tracing=False)
    key = app.state.flywheel.keys.create("alice")[1]
    with serving(app) as url:
        yield Served(url, key, settings)


def test_sign_in_upload_ask_cite_and_thumbs_up(served: Served) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(served.url)
            page.fill("#api-key", "fw_wrong")
            page.click("#signin-form button")
            expect(page.locator("#signin-error")).to_contain_text("unknown or revoked")

            page.fill("#api-key", served.key)
            page.click("#signin-form button")
            expect(page.get_by_test_id("whoami")).to_contain_text("alice")

            expect(page.locator("#group-mechanics")).to_be_checked()
            page.set_input_files(
                "#files", files=[{"name": "deicing.md", "mimeType": "text/markdown", "buffer": DEICING}]
            )
            page.click("#upload-button")
            expect(page.locator("#upload-status")).to_contain_text("deicing.md: added")
            expect(page.locator("#documents tbody tr")).to_contain_text(["ready"])

            page.fill("#question", "What is the holdover time in light snow?")
            page.press("#question", "Enter")
            answer = page.locator(".msg.assistant").last
            expect(answer.locator(".text")).to_have_text(ANSWER["answer"])
            citation = answer.locator("button.citation").first
            expect(citation).to_contain_text("deicing.md")
            citation.click()
            expect(page.locator("#passage")).to_be_visible()
            expect(page.locator("#passage-text")).to_contain_text("40 minutes at -3 C")

            for rating in ("up", "down"):  # drawn icons (inline SVG), not emoji that need an emoji font
                icon = answer.locator(f"button.rate-{rating} svg.icon")
                expect(icon).to_be_visible()
                box = icon.bounding_box()
                assert box is not None and box["width"] >= 12 and box["height"] >= 12
                assert answer.locator(f"button.rate-{rating}").inner_text().strip() == ""
            answer.locator("button.rate-up").click()
            expect(answer.locator(".feedback-status")).to_have_text("Thanks for the feedback")
            expect(answer.locator("button.rate-up")).to_have_class("rate-up chosen")
            answer.locator("button.correct").click()
            answer.locator("textarea.correction-text").fill("Holdover is 40 minutes in light snow at -3 C.")
            answer.locator("button.send-correction").click()
            expect(answer.locator(".feedback-status")).to_have_text("Thanks: correction saved")
            expect(answer.locator("form.correction")).to_be_hidden()
            trace_id = answer.get_attribute("data-trace-id")
        finally:
            browser.close()

    rows = FeedbackStore(served.settings.catalog_url).list_feedback()
    assert [(r["trace_id"], r["user"], r["rating"]) for r in rows] == [(trace_id, "alice", "up")]
    assert rows[0]["correction"] == "Holdover is 40 minutes in light snow at -3 C."
    assert rows[0]["question"] == "What is the holdover time in light snow?"
    assert rows[0]["citations"][0]["citation"].startswith("deicing.md")
