"""The ResponsesAgent model as code (MLflow "models from code"): a logged model holds this file, not a pickle.

MLflow runs it when the model is loaded (:class:`flywheel.registry.responses_agent.ProgramResponsesAgent`).
Nothing imports it.
"""

import mlflow

from flywheel.registry.responses_agent import ProgramResponsesAgent

mlflow.models.set_model(ProgramResponsesAgent())
