"""tools: built in later issues."""
