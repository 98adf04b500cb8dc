"""The assistant layer: wires programs, tools and the knowledge base into one object per service.

It sits above ``programs`` (DSPy modules), ``tools`` (the tool abstraction and domain tools) and
``knowledge``; the CLI, the service, the MLflow model and batch jobs build on it.
"""

from flywheel.assistant.assistant import BUILTIN_PROGRAMS, Assistant, NoKnowledge, load_program_class

__all__ = ["BUILTIN_PROGRAMS", "Assistant", "NoKnowledge", "load_program_class"]
