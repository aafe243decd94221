"""The chat page in a real browser: Debian's chromium, driven by Playwright, headless.

Tells a story, asks "Where is Mary?", reads the answer off the page and saves a
screenshot to test-artifacts/chat.png. Skipped (with the reason) where chromium or
Playwright is missing; scripts/install_browser.sh installs chromium, and CI runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from textrnn.chat import Answerer
from textrnn.data.babi_gen import write_generated
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
def where_checkpoint(tmp_path_factory) -> str:
    """A model that answers 'Where is X?' well: trained on 'where' questions only (~10 s)."""
    from textrnn.cli import main

    root = tmp_path_factory.mktemp("browser")
    write_generated(root / "data", 3000, 200, seed=0, kinds=("where",))
    assert main(["train", "qa", "--data", str(root / "data"), "--out", str(root / "run"),
                 "--epochs", "3", "--threads", "1", "--seed", "0"]) == 0
    return str(root / "run" / "best.pt")


def test_chat_page_answers_where_is_mary(where_checkpoint):
    answerer = Answerer.from_checkpoint(where_checkpoint)
    story = ["Mary moved to the bathroom.", "John went to the hallway."]
    assert answerer.answer(story, "Where is Mary?").answer == "bathroom"  # the model can

    with background_server(create_app(answerer)) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
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
        finally:
            browser.close()
