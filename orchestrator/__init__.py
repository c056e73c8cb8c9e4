"""orchestrator: built in later issues."""
