"""What a dataset is asked to hold: action units and PSPI labels, expressions, and seeded identity plans."""
