"""Fuzz the web API from its own OpenAPI schema (schemathesis, in-process ASGI): no 500s."""

from __future__ import annotations

import itertools

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the skip)
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
