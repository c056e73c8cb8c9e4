"""The distillation loop: the specialist registry, its proposals and the queue of distillation
jobs that turn the lead's transcripts into new specialists."""
