"""Training: the seeded dataset mixture, token-budget batching, the typed recipe and the trainer."""
