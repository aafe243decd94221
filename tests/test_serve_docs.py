"""What a person sees of ``textrnn serve`` besides the chat: the API's documentation pages
with no network, numbers without float noise, and a busy port said in one line.

A two-step model is enough here: nothing below depends on its answers being right, and its
confidences are float32 noise, which is what the rounding is for.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from textrnn.chat import Answerer
from textrnn.cli import main
from textrnn.data.babi_gen import write_generated
from textrnn.serve import create_app

STORY = ["Mary moved to the bathroom.", "John went to the hallway."]
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, checkpoint) of a QA model trained for two steps."""
    root = tmp_path_factory.mktemp("tiny_qa")
    write_generated(root / "gen", num_train=60, num_test=40, seed=0, kinds=(1,))
    assert main(["train", "qa", "--data", str(root / "gen"), "--out", str(root / "run"),
                 "--max-steps", "2", "--threads", "1", "--seed", "0"]) == 0
    return root / "gen", root / "run" / "best.pt"


@pytest.fixture(scope="module")
def client(tiny_run):
    with TestClient(create_app(Answerer.from_checkpoint(str(tiny_run[1])))) as client:
        yield client


def decimals(value: float) -> int:
    return len(repr(value).partition(".")[2])


def floats_in(value) -> list[float]:
    if isinstance(value, float):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [f for item in items for f in floats_in(item)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(url.endswith(".js") for url in urls)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        kind = next(t for ext, t in ASSET_TYPES.items() if url.endswith(ext))
        assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > 1000, url  # the real file, not an error page
    assert client.get("/openapi.json").status_code == 200


def test_swagger_ui_sends_nothing_away(client):
    assert '"validatorUrl": null' in client.get("/docs").text  # no validator.swagger.io badge
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert "/docs-assets" not in json.dumps(client.get("/openapi.json").json())  # not an API


def test_replies_round_floats_and_keep_integer_limits_ints(client):
    answer = client.post("/api/answer", json={"story": STORY, "question": "Where is Mary?"})
    assert answer.status_code == 200
    body = answer.json()
    found = [body["confidence"], *(e["weight"] for e in body["evidence"])]
    info = client.get("/api/info").json()
    found += floats_in(info["metrics"])
    health = client.get("/api/health").json()
    found += [health["accuracy"]] if health["accuracy"] is not None else []
    assert found and all(decimals(f) <= 4 for f in found), found
    limits = info["limits"]
    assert limits["max_sessions"] == 1000 and type(limits["max_sessions"]) is int
    assert all(type(limits[name]) is int for name in ("max_message_chars", "max_body_bytes",
                                                      "max_batch", "max_story_sentences"))
    assert type(limits["session_ttl_s"]) is float


def test_eval_json_rounds_its_floats(tiny_run, capsys):
    data, checkpoint = tiny_run
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--json"]) == 0
    found = floats_in(json.loads(capsys.readouterr().out))
    assert found and all(decimals(f) <= 4 for f in found), found


def test_a_busy_port_is_one_line_and_no_claim_to_be_up(tiny_run, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = main(["serve", "--checkpoint", str(tiny_run[1]), "--port", str(port),
                       "--sessions", ":memory:"])
    out, err = capsys.readouterr()
    assert status == 2
    assert "textrnn chat on" not in out
    assert err.count("\n") == 1 and err.startswith(f"textrnn: error: cannot listen on "
                                                   f"127.0.0.1:{port}: ")
