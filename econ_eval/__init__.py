"""econ-eval: an economics-domain LLM benchmark and fine-tuning kit."""

__version__ = "0.1.0"
