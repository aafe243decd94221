"""The chat page in a real browser: Debian's chromium, driven by Playwright, headless.

Tells a story, asks "Where is Mary?", reads the answer off the page and saves a
screenshot to test-artifacts/chat.png. Skipped (with the reason) where chromium or
Playwright is missing; scripts/install_browser.sh installs chromium, and CI runs it.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from textrnn.chat import Answerer
from textrnn.serve import background_server, create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium at {CHROMIUM} (run scripts/install_browser.sh)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def where_checkpoint(qa_checkpoint) -> str:
    """The suite's QA model: it answers 'Where is X?' well (trained on 'where' questions)."""
    return str(qa_checkpoint)


@contextlib.contextmanager
def chat_page(answerer: Answerer):
    """The chat page of a server for ``answerer``, open and ready in headless chromium."""
    with background_server(create_app(answerer)) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            yield page
        finally:
            browser.close()


def test_chat_page_answers_where_is_mary(where_checkpoint):
    answerer = Answerer.from_checkpoint(where_checkpoint)
    story = ["Mary moved to the bathroom.", "John went to the hallway."]
    assert answerer.answer(story, "Where is Mary?").answer == "bathroom"  # the model can

    with chat_page(answerer) as page:
        for line in story:
            page.fill("#text", line)
            page.press("#text", "Enter")
            page.wait_for_function("document.querySelectorAll('#story li').length >= "
                                   f"{story.index(line) + 1}")
        page.fill("#text", "Where is Mary?")
        page.click("#send")
        answer = page.wait_for_selector("#last-answer")
        assert answer.inner_text() == "bathroom"
        # The sentence the answer came from is highlighted in the story panel.
        evidence = page.locator("#story li.evidence").all_inner_texts()
        assert "Mary moved to the bathroom." in evidence
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat.png"))

        page.click("#reset")
        page.wait_for_function("document.querySelectorAll('#story li').length === 0")
        # New names and places, and a question without its mark (issue 19's transcript).
        for n, line in enumerate(["Alice went to the garden.", "Bob moved to the office."]):
            page.fill("#text", line)
            page.press("#text", "Enter")
            page.wait_for_function(f"document.querySelectorAll('#story li').length >= {n + 1}")
        page.fill("#text", "where is alice")
        page.click("#send")
        page.wait_for_function("document.querySelector('#last-answer') && "
                               "document.querySelector('#last-answer').innerText === 'garden'")
        assert page.locator("#story li").count() == 2  # the question was not filed


def test_show_attention_toggles_a_table_of_the_hop_weights(where_checkpoint):
    answerer = Answerer.from_checkpoint(where_checkpoint)
    story = ["Mary moved to the bathroom.", "John went to the hallway."]
    hops = answerer.answer(story, "Where is Mary?").hops  # one row per QRN layer / hop

    with chat_page(answerer) as page:
        page.fill("#text", " ".join(story))
        page.press("#text", "Enter")
        page.wait_for_function("document.querySelectorAll('#story li').length === 2")
        page.fill("#text", "Where is Mary?")
        page.click("#send")
        page.wait_for_selector("#last-answer")
        table = page.locator(".msg table.attention").last
        assert not table.is_visible()  # hidden until asked for
        page.locator(".msg button.toggle").last.click()
        assert table.is_visible()
        rows = table.locator("tr")
        assert rows.count() == 1 + len(story)  # a header, then one row per sentence
        header = rows.nth(0).locator("th").all_inner_texts()
        assert header[0] == "sentence" and len(header) == 1 + len(hops)
        sentence, *weights = rows.nth(1).locator("td").all_inner_texts()
        assert sentence == story[0]  # and its weight per hop, as 2 decimals
        assert all(abs(float(w) - row[0]) < 0.006 for w, row in zip(weights, hops,
                                                                     strict=True))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-attention.png"))
        page.locator(".msg button.toggle").last.click()
        assert not table.is_visible()
