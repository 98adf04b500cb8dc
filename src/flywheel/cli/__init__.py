"""The ``flywheel`` command line (Typer): one module per command group.

Commands import what they use inside the command function, not at the top of the module: every
invocation (``flywheel --help`` included) imports all command modules, and DSPy, MLflow, LanceDB,
torch or pandas each add seconds to its start-up time.
"""
