"""bench/hostile.py, the hostile mix of ``bench/serve.py --hostile``: each of its requests
meets the limit it is built to hit, on a real server with short timeouts."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

from textrnn.chat import Answerer
from textrnn.serve import background_server, create_app

BENCH = Path(__file__).resolve().parent.parent / "bench" / "hostile.py"


@pytest.fixture(scope="module")
def hostile():
    spec = importlib.util.spec_from_file_location("bench_hostile", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_every_hostile_request_gets_the_reply_its_limit_gives(hostile, qa_checkpoint):
    app = create_app(
        Answerer.from_checkpoint(str(qa_checkpoint)), body_timeout_s=0.5, header_timeout_s=0.5
    )
    requests = hostile.build()
    with background_server(app) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        outcomes = asyncio.run(
            hostile.pelt(
                host,
                int(port),
                requests,
                rate_per_s=200,
                seconds=2 * len(requests) / 200,
                give_up_s=10,
            )
        )
    assert hostile.verdict(outcomes, requests) == []
    expected = {
        "chunked oversize": "413",
        "declared oversize": "413",
        "short body": "408",
        "slow body": "408",
        "slow headers": "closed",
        "bad json": "422",
        "lone surrogate": "422",
        "nan": "422",
        "huge field": "422",
        "many sentences": "422",
        "deep nesting": "400",
        "not http": "400",
    }
    # The chunked oversize one included: the server's lingering close keeps its 413 from
    # being lost to a reset while the client still sends.
    assert outcomes == Counter({(name, code): 2 for name, code in expected.items()})


def test_the_verdict_names_what_a_server_should_not_do(hostile):
    requests = hostile.build()
    outcomes = Counter(
        {
            ("bad json", "422"): 3,
            ("bad json", "500"): 1,
            ("slow body", "pending"): 2,
            ("slow headers", "closed"): 1,
            ("slow headers", "200"): 1,
            ("chunked oversize", "closed"): 1,  # its 413 lost: no lingering close
            ("chunked oversize", "200"): 1,
            ("declared oversize", "closed"): 1,  # nothing in flight: it owes a 413
        }
    )
    assert hostile.verdict(outcomes, requests) == [
        "bad json: 500 x1",
        "chunked oversize: 200 x1",
        "chunked oversize: closed x1",
        "declared oversize: closed x1",
        "slow body: pending x2",
        "slow headers: 200 x1",
    ]
