"""The distillation loop: the lead's verified work → new and better specialists.

propose tasks worth a specialist (:mod:`.proposals`) → build a dataset from transcripts
(:mod:`.source`, :mod:`.dataset`) → train a LoRA adapter (:mod:`.training`) → evaluate it against
the gate (:mod:`.gate`) → promote it (:mod:`.promotion`) → every serving process follows the
registry (:mod:`.catalog`, :mod:`.reconcile`). A queued job (:mod:`.jobs`) runs build → train →
evaluate (→ promote) in ``understudy worker`` (:mod:`.pipeline`); the specialist registry
(:mod:`.registry`) records proposals, specialists and their versions.

Everything here takes a :class:`~distill.config.DistillConfig`, which the serving layer builds
from the settings; nothing here reads the settings.
"""
