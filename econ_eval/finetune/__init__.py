"""Fine-tuning: recipes (``recipe``), training data (``data``) and the TRL/PEFT trainer (``train``)."""
