"""The Iterative-SPO trainer: rollout -> rewards -> advantages -> log-probs -> update."""
