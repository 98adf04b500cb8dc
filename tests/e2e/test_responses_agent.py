"""The program as an MLflow ResponsesAgent: saved, loaded by MLflow, answering Responses requests as the
``custom_inputs`` user (real embedder and index, the stub LM endpoint for answers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from flywheel.assistant import Assistant
from flywheel.config import load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.registry.responses_agent import save_responses_agent
from tests.unit.serve_helpers import stub_lm_base

OIL = b"# Oil servicing\n\nCheck the engine oil level 5 to 30 minutes after engine shutdown.\n"


@pytest.fixture
def stub_lm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    base = stub_lm_base()
    for name, value in {"PROVIDER": "openai", "API_BASE": base, "MODEL": "stub"}.items():
        monkeypatch.setenv(f"FLYWHEEL_LM__{name}", value)
    yield


def test_responses_agent_answers_as_the_custom_inputs_user(stub_lm: None, tmp_path: Path) -> None:
    settings = load_settings()
    kb = KnowledgeBase(settings)
    kb.catalog.add_user("alice", ["mechanics"])
    kb.catalog.add_user("bob", ["pilots"])
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    save_responses_agent(tmp_path / "agent", "rag", Assistant(settings, knowledge=kb).program("rag"), settings)

    model = mlflow.pyfunc.load_model(str(tmp_path / "agent"))
    question = {"input": [{"role": "user", "content": "When do I check the engine oil level?"}]}
    reply = model.predict({**question, "custom_inputs": {"user": "alice"}})
    assert reply["output"][0]["type"] == "message"
    assert reply["output"][0]["content"][0]["text"]
    assert [c["citation"].split()[0] for c in reply["custom_outputs"]["citations"]] == ["oil.md"]
    assert reply["custom_outputs"]["trace_id"]
    outsider = model.predict({**question, "custom_inputs": {"user": "bob"}})  # pilots cannot read oil.md
    assert outsider["custom_outputs"]["citations"] == []
    events = list(model.predict_stream({**question, "custom_inputs": {"user": "alice"}}))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert events[-1]["type"] == "response.output_item.done"
    assert deltas == events[-1]["item"]["content"][0]["text"]


@pytest.mark.parametrize("form", ["pyfunc", "responses_agent"])
def test_a_saved_model_is_code_and_state_without_a_pickle(stub_lm: None, tmp_path: Path, form: str) -> None:
    """The model used to be a cloudpickled PythonModel instance (MLflow warned at every deploy)."""
    from flywheel.registry.pyfunc import save_program_model

    settings = load_settings()
    kb = KnowledgeBase(settings)
    kb.catalog.add_user("alice", ["mechanics"])
    kb.ingest_files(kb.principal("alice"), [("oil.md", OIL)], groups=["mechanics"])
    program = Assistant(settings, knowledge=kb).program("rag")
    save = save_program_model if form == "pyfunc" else save_responses_agent
    save(tmp_path / "model", "rag", program, settings)

    files = [p.name for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    assert "model_code_path" in (tmp_path / "model" / "MLmodel").read_text()
    assert mlflow.pyfunc.load_model(str(tmp_path / "model")) is not None
