"""The learned pre-router's training side: seed data, transcript labels, versions, the gate."""
