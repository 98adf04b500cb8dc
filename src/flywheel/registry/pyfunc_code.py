"""The pyfunc model as code (MLflow "models from code"): a logged model holds this file, not a pickle.

MLflow runs it when the model is loaded; the program itself comes from the model's artifacts and the
serving process's settings (:class:`flywheel.registry.pyfunc.ProgramModel`). Nothing imports it.
"""

import mlflow

from flywheel.registry.pyfunc import ProgramModel

mlflow.models.set_model(ProgramModel())
