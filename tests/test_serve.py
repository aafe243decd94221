"""The web service: every route, every kind of bad input, concurrency and batching."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from textrnn.chat import Answerer
from textrnn.rounding import round_floats
from textrnn.serve import background_server, create_app

STORY = ["Mary moved to the bathroom.", "John went to the hallway."]


@pytest.fixture(scope="module")
def checkpoint(qa_checkpoint) -> str:
    """The suite's QA checkpoint (conftest.py)."""
    return str(qa_checkpoint)


@pytest.fixture
def answerer(checkpoint) -> Answerer:
    return Answerer.from_checkpoint(checkpoint)


@pytest.fixture
def make_client(answerer):
    """Factory: ``make(**limits) -> TestClient`` with the app's lifespan running."""
    clients = []

    def make(**limits) -> TestClient:
        client = TestClient(create_app(answerer, **limits))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def new_session(client: TestClient) -> str:
    response = client.post("/api/sessions")
    assert response.status_code == 201
    return response.json()["id"]


def test_index_serves_the_chat_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/api/sessions" in response.text


def test_health_and_info(client, answerer):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["task"] == "qa"
    assert health["vocab_size"] == answerer.info()["vocab_size"]
    assert health["accuracy"] == round(answerer.info()["metrics"]["val_acc"], 4)
    info = client.get("/api/info").json()
    assert info["memory_size"] == answerer.memory_size
    assert info["limits"]["max_message_chars"] == 1000


def test_openapi_schema_states_the_limits(client):
    schema = client.get("/openapi.json").json()
    answer_in = schema["components"]["schemas"]["AnswerIn"]["properties"]
    assert answer_in["story"]["maxItems"] == 200
    assert answer_in["question"]["maxLength"] == 1000


def test_answer_is_stateless_and_matches_the_answerer(client, answerer):
    body = client.post("/api/answer", json={"story": STORY, "question": "Where is Mary?"})
    assert body.status_code == 200
    # The same answer, its floats as the API shows them (4 decimals: textrnn.rounding).
    assert body.json() == round_floats(answerer.answer(STORY, "Where is Mary?").to_dict())
    assert set(body.json()) == {"answer", "confidence", "evidence", "unknown_words", "dropped",
                                "sure", "hops"}


def test_names_and_places_never_seen_over_the_api(client):
    story = ["Alice went to the garden.", "Bob moved to the observatory."]
    for question, place in (("Where is Alice?", "garden"), ("where is bob", "observatory")):
        body = client.post("/api/answer", json={"story": story, "question": question}).json()
        assert body["answer"] == place and "bob" in body["unknown_words"]
    session_id = new_session(client)
    url = f"/api/sessions/{session_id}/messages"
    client.post(url, json={"text": " ".join(story)})
    reply = client.post(url, json={"text": "where is bob"}).json()
    assert reply["kind"] == "answer" and reply["answer"]["answer"] == "observatory"
    assert "don't know" not in reply["text"]


def test_answer_reads_only_the_memory_and_says_how_much_it_dropped(client, answerer):
    story = STORY * answerer.memory_size  # twice the memory
    body = client.post("/api/answer", json={"story": story, "question": "Where is Mary?"}).json()
    assert body["dropped"] == len(story) - answerer.memory_size
    assert all(e["index"] >= body["dropped"] for e in body["evidence"])


@pytest.mark.parametrize("payload, status", [
    (b"{not json", 422),
    (b'{"story": "Mary left.", "question": "Where is Mary?"}', 422),  # story must be a list
    (b'{"story": [1, 2], "question": "Where is Mary?"}', 422),
    (b'{"story": [], "question": 7}', 422),
    (b'{"story": []}', 422),  # no question
    (b'{"story": [], "question": ""}', 422),
    (b'{"story": [], "question": "Where?", "extra": 1}', 422),
    (b'[]', 422),
])
def test_answer_rejects_bad_input_with_4xx(client, payload, status):
    response = client.post("/api/answer", content=payload,
                           headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["detail"]


def test_answer_rejects_what_is_too_long(make_client):
    client = make_client(max_message_chars=50, max_story_sentences=3, max_body_bytes=2000)
    long_question = {"story": STORY, "question": "Where " * 20 + "?"}
    assert client.post("/api/answer", json=long_question).status_code == 422
    many = {"story": STORY * 2, "question": "Where is Mary?"}
    assert client.post("/api/answer", json=many).status_code == 422
    huge = client.post("/api/answer", content=b"x" * 3000,
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "bytes" in huge.json()["detail"]


def test_session_round_trip(client):
    session_id = new_session(client)
    reply = client.post(f"/api/sessions/{session_id}/messages", json={"text": " ".join(STORY)})
    assert reply.status_code == 200
    assert reply.json()["kind"] == "added" and reply.json()["added"] == STORY
    assert reply.json()["story_length"] == 2 and reply.json()["answer"] is None
    asked = client.post(f"/api/sessions/{session_id}/messages", json={"text": "Where is Mary?"})
    assert asked.json()["kind"] == "answer"
    assert asked.json()["answer"]["answer"] in asked.json()["text"]
    plain = client.post(f"/api/sessions/{session_id}/messages", json={"text": "where is mary"})
    assert plain.json()["kind"] == "answer" and plain.json()["story_length"] == 2
    assert plain.json()["answer"] == asked.json()["answer"]
    assert client.get(f"/api/sessions/{session_id}").json()["story"] == STORY
    assert client.post(f"/api/sessions/{session_id}/reset").json()["story"] == []
    assert client.get(f"/api/sessions/{session_id}").json()["story"] == []
    assert client.delete(f"/api/sessions/{session_id}").status_code == 204
    gone = client.get(f"/api/sessions/{session_id}")
    assert gone.status_code == 404 and "POST /api/sessions" in gone.json()["detail"]


def test_session_commands_and_polite_errors(client):
    session_id = new_session(client)
    url = f"/api/sessions/{session_id}/messages"
    assert client.post(url, json={"text": "Where is Mary?"}).json()["kind"] == "info"  # no story
    assert client.post(url, json={"text": "/nonsense"}).json()["kind"] == "error"
    assert client.post(url, json={"text": "/help"}).json()["kind"] == "info"
    assert client.post(url, json={"text": "x" * 1001}).status_code == 422
    assert client.post(url, json={"text": ["Mary left."]}).status_code == 422
    assert client.post(url, content=b"{", headers={"content-type": "application/json"}
                       ).status_code == 422


def test_session_forgets_the_oldest_beyond_memory_and_says_so(client, answerer):
    session_id = new_session(client)
    url = f"/api/sessions/{session_id}/messages"
    for i in range(answerer.memory_size):
        client.post(url, json={"text": f"Mary moved to the office {i}."})
    reply = client.post(url, json={"text": "John went to the hallway."}).json()
    assert reply["forgotten"] == ["Mary moved to the office 0."]
    assert "forgot the oldest 1" in reply["text"]
    assert reply["story_length"] == answerer.memory_size


def test_unknown_and_malformed_session_ids(client):
    assert client.get("/api/sessions/nosuchsession").status_code == 404
    assert client.post("/api/sessions/nosuch/messages", json={"text": "hi"}).status_code == 404
    assert client.post("/api/sessions/nosuch/reset").status_code == 404
    assert client.delete("/api/sessions/nosuch").status_code == 404
    assert client.get("/api/sessions/" + "a" * 65).status_code == 422
    assert client.get("/api/sessions/bad$id").status_code == 422


def test_idle_sessions_expire(make_client):
    client = make_client(session_ttl_s=0.2)
    session_id = new_session(client)
    time.sleep(0.3)
    response = client.get(f"/api/sessions/{session_id}")
    assert response.status_code == 404 and "expired" in response.json()["detail"]


def test_least_recently_used_session_is_evicted(make_client):
    client = make_client(max_sessions=2)
    first, second = new_session(client), new_session(client)
    client.get(f"/api/sessions/{first}")  # now `second` is the least recently used
    new_session(client)
    assert client.get(f"/api/sessions/{first}").status_code == 200
    assert client.get(f"/api/sessions/{second}").status_code == 404
    assert client.get("/api/health").json()["sessions"] == 2


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_concurrent_statements_to_one_session_are_all_kept(answerer, tmp_path, store):
    """20 threads over a real socket on 127.0.0.1; no statement is lost, in either store."""
    statements = [f"Mary moved to the kitchen {i}." for i in range(20)]
    sessions = ":memory:" if store == "memory" else str(tmp_path / "sessions.sqlite")
    app = create_app(answerer, sessions=sessions)
    with background_server(app) as url, httpx.Client(base_url=url) as http:
        assert url.startswith("http://127.0.0.1:")
        session_id = http.post("/api/sessions").json()["id"]
        start = threading.Barrier(len(statements))

        def post(text: str) -> int:
            start.wait()
            return http.post(f"/api/sessions/{session_id}/messages", json={"text": text}
                             ).status_code

        with ThreadPoolExecutor(len(statements)) as pool:
            assert set(pool.map(post, statements)) == {200}
        story = http.get(f"/api/sessions/{session_id}").json()["story"]
    assert sorted(story) == sorted(statements)


def test_concurrent_questions_share_forward_passes(answerer):
    calls: list[int] = []
    answer_batch = answerer.answer_batch

    def counting(items):
        calls.append(len(items))
        time.sleep(0.02)  # a slow model: the next questions queue up meanwhile
        return answer_batch(items)

    answerer.answer_batch = counting
    app = create_app(answerer, batch_wait_s=0.01)
    n = 16

    async def ask_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            responses = await asyncio.gather(*[
                http.post("/api/answer", json={"story": STORY[: 1 + i % 2],
                                               "question": "Where is Mary?"})
                for i in range(n)])
            await app.state.batcher.stop()
            return responses

    responses = asyncio.run(ask_all())
    assert [r.status_code for r in responses] == [200] * n
    assert sum(calls) == n and len(calls) < n / 2
    expected = answer_batch([(STORY[: 1 + i % 2], "Where is Mary?") for i in range(n)])
    assert [r.json()["answer"] for r in responses] == [a.answer for a in expected]


def test_session_questions_go_through_the_batcher(client):
    batches: list[int] = []
    batcher = client.app.state.batcher
    answer_batch = batcher.answer_batch
    batcher.answer_batch = lambda items: batches.append(len(items)) or answer_batch(items)
    session_id = new_session(client)
    client.post(f"/api/sessions/{session_id}/messages", json={"text": STORY[0]})
    reply = client.post(f"/api/sessions/{session_id}/messages", json={"text": "Where is Mary?"})
    assert reply.json()["kind"] == "answer" and batches == [1]


def test_a_question_about_no_story_gets_the_chat_reply_everywhere(client):
    from textrnn.chat import NO_STORY

    reply = client.post("/api/answer", json={"story": [], "question": "Where is Mary?"})
    assert reply.status_code == 422 and reply.json()["detail"] == NO_STORY
    session_id = client.post("/api/sessions").json()["id"]
    message = client.post(f"/api/sessions/{session_id}/messages",
                          json={"text": "Where is Mary?"}).json()
    assert message["text"] == NO_STORY
