"""Batch classification of customer feedback: locally (threads, checkpoints, resume) and on Spark.

- :mod:`flywheel.batch.io` reads CSV / Parquet / JSON Lines and writes Parquet;
- :mod:`flywheel.batch.local` classifies a table in parallel with checkpoints, so that an
  interrupted run resumes where it stopped, and records per-row errors instead of failing;
- :mod:`flywheel.batch.spark` runs a registered MLflow model over a Spark DataFrame
  (``mlflow.pyfunc.spark_udf``);
- :mod:`flywheel.batch.report` scores predictions against labels (accuracy, per-class
  precision/recall/F1, confusion matrix PNG, comparison with a baseline) and logs to MLflow.
"""

PREDICTION_COLUMNS = ("predicted_sentiment", "predicted_reason", "justification", "error")
"""Columns a batch run adds to the input's columns (an input column of the same name is replaced)."""
