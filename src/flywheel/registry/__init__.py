"""MLflow layer: tracking store, program registry (versions, champion alias) and the pyfunc model."""
