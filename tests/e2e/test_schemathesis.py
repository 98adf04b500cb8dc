"""Schemathesis against the service's own OpenAPI spec, with a valid API key: no server errors.

The app runs in-process (ASGI) over a real catalog and LanceDB index, with DummyLM answers and a
hashing embedder, so the run is fast and exercises the HTTP layer rather than the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import dspy
import pytest
import schemathesis
from dspy.utils import DummyLM
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from flywheel.assistant import Assistant
from flywheel.config import load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.serve.app import create_app
from tests.unit.serve_helpers import ANSWER, OIL, HashEmbedder


@dataclass
class Api:
    app: object
    key: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Api:
    config = load_settings(home=tmp_path_factory.mktemp("schemathesis-home"), serve={"reload_interval_s": 0})
    kb = KnowledgeBase(config, embedder=HashEmbedder())
    kb.catalog.add_user("alice", ["mechanics"])
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    lm = DummyLM([ANSWER] * 5000, adapter=dspy.JSONAdapter())
    app = create_app(config, assistant=Assistant(config, knowledge=kb), lm=lm, tracing=False)
    app.state.flywheel.ready = True  # no lifespan under the ASGI transport
    return Api(app, app.state.flywheel.keys.create("alice")[1])


def test_no_server_errors(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    headers = {"Authorization": f"Bearer {api.key}"}
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        check()
        tested.append(operation.label)
    assert len(tested) >= 12, tested
