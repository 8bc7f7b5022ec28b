"""Looking at what was made: verify a dataset, summarise it, draw contact sheets."""
