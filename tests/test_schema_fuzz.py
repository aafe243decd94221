"""Fuzz the web API from its own OpenAPI schema (schemathesis, in-process ASGI): no 500s."""

from __future__ import annotations

import itertools
import json

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the skip)
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from textrnn.chat import Answerer  # noqa: E402
from textrnn.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def app(qa_checkpoint):
    return create_app(Answerer.from_checkpoint(str(qa_checkpoint)))


def test_no_server_errors(app):
    """Valid and invalid inputs, from every operation's schema, never get a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation, mode in itertools.product(operations, GenerationMode):
        has_input = (list(operation.iter_parameters())
                     or operation.get_request_payload_content_types())
        if mode is GenerationMode.NEGATIVE and not has_input:
            continue  # nothing to get wrong (GET /api/health)

        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def no_server_error(case):
            case.call_and_validate(checks=[not_a_server_error])

        no_server_error()


# What the schema cannot describe, so schemathesis never sends: JSON's "\ud800" (a lone
# surrogate, which Python parses but UTF-8 cannot encode) and NaN/Infinity (which Python
# parses but JSON does not have). Half the characters are surrogates; st.floats() has NaN and ±inf.
_text = st.text(st.characters(exclude_categories=()) | st.characters(categories=["Cs"]),
                max_size=8)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8)
_bodies = st.one_of(
    st.fixed_dictionaries({"story": st.lists(_text, max_size=3), "question": _text}),
    st.fixed_dictionaries({"text": _text}),
    st.dictionaries(st.sampled_from(["story", "question", "text"]) | _text, _values, max_size=3),
    _values)


def test_surrogates_and_nan_never_get_a_server_error(app):
    """Any JSON Python can parse, on every route that reads a body, gets at most a 4xx."""
    with TestClient(app, raise_server_exceptions=False) as client:
        session_id = client.post("/api/sessions").json()["id"]

        @settings(max_examples=300, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(route=st.sampled_from(["/api/answer", f"/api/sessions/{session_id}/messages"]),
               body=_bodies)
        def no_server_error(route, body):
            # ensure_ascii writes a surrogate as \ud800, allow_nan (the default) NaN as NaN.
            response = client.post(route, content=json.dumps(body).encode(),
                                   headers={"content-type": "application/json"})
            assert response.status_code < 500, (route, body, response.text[:200])
            response.json()  # and the reply itself is JSON

        no_server_error()
