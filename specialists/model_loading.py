"""One lock for every model this process builds from disk.

transformers' ``from_pretrained`` is not thread-safe: while it builds a model it swaps
process-wide state — ``PreTrainedModel.tie_weights`` becomes a no-op, ``torch.linspace`` is
patched and the default dtype is changed — and restores it afterwards. A second model built on
another thread in that window comes out wrong: a Llama with tied embeddings keeps its
``lm_head`` on the meta device ("Cannot copy out of meta tensor"), or is built in the other
model's dtype. The local SLM backend loads on its worker thread and the pre-router's embedder on
whichever thread first routes, so in a server or an eval run the two race on the first request.

Every load therefore holds :data:`MODEL_LOADING`. It is re-entrant so a helper that loads a
tokenizer and a model can hold it around both while the pieces it calls hold it too. Loads are
rare (once per model per process) and short, so serialising them costs nothing that matters.
"""

from __future__ import annotations

import threading

MODEL_LOADING = threading.RLock()
"""Held while a model, tokenizer or adapter is built from disk in this process."""
