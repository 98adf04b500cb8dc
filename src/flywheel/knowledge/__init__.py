"""The knowledge base: parse, chunk, embed and index documents; search them under access control."""
