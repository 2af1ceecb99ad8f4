"""LLM-as-judge, RAGAS scoring and data annotation over OpenAI-compatible endpoints."""
