"""painfactory's trainer: ViTPain and its baselines on painfactory shards, with Ray Train."""
