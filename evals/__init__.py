"""evals: built in later issues."""
