"""DSPy programs: the RAG chatbot, the multi-tool agent, the feedback classifier, judges."""
