"""The embedded SLM backend: transformers + peft in this process, on CPU or CUDA.

One worker thread owns the model. Async callers enqueue jobs; the worker drains the queue into
batches of compatible jobs (same sampling parameters) and runs one ``generate`` per batch, with a
per-row LoRA adapter through peft's mixed-adapter batching. This makes the backend safe under
concurrent calls (no two threads ever touch the model) and turns concurrency into throughput:
on two CPU cores a batch of 8 produces several times the tokens per second of batch 1.

A request fails alone: each is checked (tokenized, measured against the model's context) before
it joins a batch, and a batch that still fails as a whole is run again request by request, so
the others are answered and only the one at fault gets its error. Closing answers every caller:
queued ones at once with :class:`SpecialistUnavailable`, the work in flight within a bounded
drain; nobody is left waiting on a worker that has stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from specialists.adapters import check_adapter_fits, served_adapter_name
from specialists.backend import (
    ChatMessage,
    Confidence,
    Generation,
    SLMBackend,
    TokenLogprob,
    Usage,
    with_system_prompt,
)
from specialists.catalog import Specialist
from specialists.errors import (
    ModelError,
    PromptTooLong,
    SpecialistError,
    SpecialistUnavailable,
    UnderstudyError,
)
from specialists.model_loading import MODEL_LOADING
from specialists.sampling import Sampling, cut_at_stop

logger = logging.getLogger(__name__)

_Error = TypeVar("_Error", bound=UnderstudyError)

BASE_ADAPTER = "__base__"
"""The name peft uses for 'no adapter' in a mixed batch."""


@dataclass(eq=False)
class _Job:
    """One queued request, or a control action (``run`` set) executed on the worker thread."""

    adapter: str = BASE_ADAPTER
    messages: list[ChatMessage] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)
    """Settled over the specialist's defaults (:meth:`Sampling.over`)."""
    specialist: str = ""
    run: Callable[[], Any] | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued: float = field(default_factory=time.perf_counter)
    prompt: list[int] = field(default_factory=list)
    """The prompt's token ids, set by the worker when it admits the job to a batch."""

    @property
    def sampling_key(self) -> Sampling:
        """Jobs share a batch only when they decode alike: one ``generate`` call takes one
        set of sampling parameters for all its rows."""
        return self.sampling


class LocalBackend(SLMBackend):
    """In-process generation with several LoRA adapters on one base model.

    Args:
        model_dir: A validated Hugging Face model directory (see ``ModelStore.resolve``).
        base_ref: The reference users know this base by (checked against specialists' bases).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        max_batch_size: Most requests generated together.
        max_input_tokens: Longer prompts are refused with a clear error.
        drain_s: How long closing waits for the work in flight to finish and be answered.
    """

    name = "local"
    sampling_fields = frozenset(
        {"max_tokens", "temperature", "top_p", "stop", "seed", "logprobs", "top_logprobs"}
    )

    def __init__(
        self,
        model_dir: Path,
        *,
        base_ref: str | None = None,
        device: str = "auto",
        max_batch_size: int = 8,
        max_input_tokens: int = 4096,
        drain_s: float = 30.0,
    ) -> None:
        self.model_dir = model_dir
        self.base_ref = base_ref or str(model_dir)
        self._device_setting = device
        self._max_batch_size = max_batch_size
        self._max_input_tokens = max_input_tokens
        self._drain_s = drain_s
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        """Guards ``_thread``, ``_closing`` and ``_waiting``, which callers and closing share."""
        self._thread: threading.Thread | None = None
        self._closing = False
        self._waiting: set[_Job] = set()
        """Every submitted job whose caller still waits: what closing must answer."""
        self._in_flight: tuple[_Job, ...] = ()
        """What the worker works on now (a batch, or one control job); closing lets it finish."""
        self._context_length: int | None = None
        """The model's context in tokens (prompt and answer together), once it is loaded."""
        self._adapters: dict[str, Path] = {}
        """Adapters loaded on the model, by served name (written on the worker thread only)."""
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos_ids: set[int] = set()
        self.batches_run = 0
        """How many ``generate`` batches ran (shows whether concurrent calls were batched)."""

    # ----------------------------------------------------------------------------- public API

    async def generate(
        self,
        specialist: Specialist,
        messages: Sequence[ChatMessage],
        *,
        sampling: Sampling | None = None,
    ) -> Generation:
        if specialist.base_model and specialist.base_model not in (
            self.base_ref,
            str(self.model_dir),
        ):
            raise SpecialistError(
                specialist.name,
                f"needs base model {specialist.base_model!r}, but the local backend serves "
                f"{self.base_ref!r}",
            )
        adapter = BASE_ADAPTER
        if specialist.adapter is not None:
            adapter = served_adapter_name(specialist)
        job = _Job(
            adapter=adapter,
            messages=with_system_prompt(specialist, messages),
            sampling=(sampling or Sampling()).over(specialist.generation),
            specialist=specialist.name,
        )
        with self.adapter_uses.hold(adapter):
            if specialist.adapter is not None:
                await self.load_adapter(adapter, specialist.adapter)
            return await self._submit(job)

    async def load_adapter(self, name: str, path: Path) -> None:
        """Load a LoRA adapter under ``name`` (a served name: see
        :func:`~specialists.adapters.served_adapter_name`).

        A name stands for one set of weights and is never reloaded: loading a name that is
        loaded already does nothing, so a run still generating with ``math@v1-…`` keeps it while
        ``math@v2-…`` is loaded next to it.
        """
        await self._submit(_Job(run=lambda: self._load_adapter(name, path)))

    async def unload_adapter(self, name: str) -> None:
        """Delete the adapter ``name`` from the model, freeing its weights, unless this process
        still generates with it; a name not loaded is no error (nor a reason to load the model).
        """
        self._refuse_if_used(name)
        if name in self._adapters:
            await self._submit(_Job(run=lambda: self._unload_adapter(name)))

    async def loaded_adapters(self) -> set[str]:
        return set(self._adapters)

    async def warm_up(self) -> None:
        """Load the model now rather than on the first request."""
        await self._submit(_Job(run=lambda: None))

    async def aclose(self) -> None:
        """Stop taking work and answer every caller, waiting at most ``drain_s``.

        Callers still queued hear at once that the backend is shutting down
        (:class:`SpecialistUnavailable`); the work in flight has ``drain_s`` to finish and be
        answered, after which its callers hear the same. Every later call is refused at once.
        """
        with self._lock:
            self._closing = True
            thread, self._thread = self._thread, None
        self._queue.put(None)  # wakes an idle worker, which then sees the close and stops
        self._refuse_waiting(spare=self._in_flight)
        try:
            if thread is not None:
                await asyncio.to_thread(thread.join, self._drain_s)
                if thread.is_alive():
                    logger.warning(
                        "the local backend's work in flight outlived the %g s drain; its "
                        "callers were told the backend is shutting down",
                        self._drain_s,
                    )
        finally:  # drained, timed out or cancelled: nobody is left waiting
            self._refuse_waiting(spare=())

    # ------------------------------------------------------------------------ worker side

    async def _submit(self, job: _Job) -> Any:
        with self._lock:
            if self._closing:
                raise self._shutting_down(job)
            self._ensure_worker()
            self._waiting.add(job)
            self._queue.put(job)
        try:
            return await asyncio.wrap_future(job.future)
        finally:
            with self._lock:
                self._waiting.discard(job)

    def _ensure_worker(self) -> None:
        """Start the worker unless it runs (first call, or it died); the caller holds the lock."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._worker, name="understudy-local-slm", daemon=True
            )
            self._thread.start()

    def _refuse_waiting(self, *, spare: tuple[_Job, ...]) -> None:
        """Answer every waiting caller but those of ``spare`` with the shutdown error."""
        with self._lock:
            refused = [job for job in self._waiting if job not in spare]
        for job in refused:
            _fail(job, self._shutting_down(job))

    def _shutting_down(self, job: _Job) -> SpecialistUnavailable:
        return SpecialistUnavailable(
            job.specialist or self.base_ref,
            "the local backend is shutting down",
            elapsed_s=time.perf_counter() - job.enqueued,
        )

    def _worker(self) -> None:
        pending: deque[_Job] = deque()  # taken from the queue, but did not fit a batch yet
        while not self._closing:
            job = pending.popleft() if pending else self._queue.get()
            if job is None or job.future.done():  # the close's wake-up, or a caller who left
                continue
            self._in_flight = (job,)
            try:
                self._serve(job, pending)
            finally:
                self._in_flight = ()

    def _serve(self, job: _Job, pending: deque[_Job]) -> None:
        """Run a control job, or generate ``job`` in a batch with the waiting jobs that fit."""
        try:
            self._ensure_loaded()
        except Exception as exc:  # loading failed: every waiting caller must hear why
            if not isinstance(exc, UnderstudyError):
                exc = _with_cause(
                    ModelError(f"cannot load model from {self.model_dir}: {_first_line(exc)}"),
                    exc,
                )
            _fail(job, exc)
            return
        if job.run is not None:
            _settle(job, job.run)
        elif self._admit(job):
            batch = self._collect_batch(job, pending)
            self._in_flight = tuple(batch)
            self._run_batch(batch)

    def _collect_batch(self, first: _Job, pending: deque[_Job]) -> list[_Job]:
        """``first`` and the waiting jobs that can share its ``generate`` (same sampling
        parameters, admitted); jobs that cannot are kept in ``pending`` for later batches."""
        batch = [first]
        key = first.sampling_key

        def shares_batch(job: _Job) -> bool:
            return job.run is None and job.sampling_key == key

        for candidate in list(pending):
            if len(batch) >= self._max_batch_size:
                break
            if shares_batch(candidate):
                pending.remove(candidate)
                if self._admit(candidate):
                    batch.append(candidate)
        while len(batch) < self._max_batch_size:
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            if queued is None:  # closing: this batch still runs, the worker stops after it
                break
            if not shares_batch(queued):
                pending.append(queued)
            elif self._admit(queued):
                batch.append(queued)
        return batch

    def _admit(self, job: _Job) -> bool:
        """Tokenize ``job``'s prompt and check that it fits the model.

        A job that does not is answered with its own error here, before it can share (and
        spoil) a batch; so is one whose caller is no longer waiting.
        """
        if job.future.done():
            return False
        try:
            ids = self._tokenizer.apply_chat_template(
                job.messages, add_generation_prompt=True, tokenize=True
            )
        except Exception as exc:  # a chat template that refuses these messages, say
            reason = f"cannot build its prompt: {_first_line(exc)}"
            _fail(job, _with_cause(SpecialistError(job.specialist, reason), exc))
            return False
        job.prompt = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        tokens, context = len(job.prompt), self._context_length
        asked = job.sampling.max_tokens or 0  # set: the job's sampling is settled (``over``)
        if tokens > self._max_input_tokens:
            limit = self._max_input_tokens
            reason = f"prompt has {tokens} tokens; the local backend accepts {limit}"
        elif context is not None and tokens + asked > context:
            reason = (
                f"prompt has {tokens} tokens and asks for up to {asked} more; the "
                f"model's context holds {context} (shorten the request or lower max_tokens)"
            )
        else:
            return True
        _fail(job, PromptTooLong(job.specialist, reason, prompt_tokens=tokens))
        return False

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise ModelError(
                "the local backend needs the local extra: pip install 'understudy[local]'"
            ) from exc
        device = self._device_setting
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        hf_logging.disable_progress_bar()  # a local load takes about a second; no bar needed
        try:
            with MODEL_LOADING:
                tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
                model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"cannot load model from {self.model_dir}: {str(exc).splitlines()[0]}. Fix: run "
                f"`understudy models pull {self.base_ref} --force`"
            ) from exc
        model.to(device).eval()  # type: ignore[arg-type]  # transformers' wrapper hides to()
        self._context_length = getattr(model.config, "max_position_embeddings", None)
        eos = model.generation_config.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            self._eos_ids.add(tokenizer.eos_token_id)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._model = tokenizer, model

    def _load_adapter(self, name: str, path: Path) -> None:
        if name == BASE_ADAPTER:
            raise SpecialistError(name, f"{BASE_ADAPTER!r} is reserved for the base model")
        if name in self._adapters:
            return  # loaded already, and a served name never changes its weights
        from peft import PeftModel

        is_peft = isinstance(self._model, PeftModel)
        base = self._model.get_base_model() if is_peft else self._model
        check_adapter_fits(base, path, name=name, base_ref=self.base_ref)
        try:
            with MODEL_LOADING:
                if is_peft:
                    if name in self._model.peft_config:  # left behind by a load that failed
                        self._model.delete_adapter(name)
                    self._model.load_adapter(str(path), adapter_name=name)
                else:
                    self._model = PeftModel.from_pretrained(
                        self._model, str(path), adapter_name=name
                    )
        except (RuntimeError, ValueError, OSError, KeyError) as exc:
            raise ModelError(
                f"cannot load adapter {name!r} from {path}: {str(exc).splitlines()[0]}"
            ) from exc
        self._model.eval()
        self._adapters[name] = path

    def _unload_adapter(self, name: str) -> None:
        if self.adapter_uses.count(name) or self._adapters.pop(name, None) is None:
            return  # taken up again while this job queued, or unloaded by an earlier one
        if self._adapters:
            self._model.delete_adapter(name)
        else:  # peft keeps no model without an adapter: the base model alone, LoRA layers gone
            self._model = self._model.unload()

    def _run_batch(self, batch: list[_Job]) -> None:
        """Generate ``batch`` and answer its callers.

        A batch that fails as a whole is run again one request at a time, so that only the
        request at fault fails: one request can spoil a batch in ways no check foresees (the
        memory its long prompt needs, a fault in its adapter).
        """
        try:
            results = self._generate_batch(batch)
        except Exception as exc:  # one bad request must fail neither its batch nor the worker
            if len(batch) > 1:
                logger.warning(
                    "a batch of %d requests failed (%s); running each alone",
                    len(batch),
                    _first_line(exc),
                )
                for job in batch:
                    if not job.future.done():  # a close may have answered it meanwhile
                        self._run_batch([job])
                return
            (job,) = batch
            if not isinstance(exc, SpecialistError):
                reason = f"generation failed: {_first_line(exc)}"
                exc = _with_cause(SpecialistError(job.specialist, reason), exc)
            _fail(job, exc)
            return
        for job, generation in zip(batch, results, strict=True):
            _answer(job, generation)

    def _generate_batch(self, batch: list[_Job]) -> list[Generation]:
        import torch

        tok, model = self._tokenizer, self._model
        prompts = [job.prompt for job in batch]
        width = max(map(len, prompts))
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        sampling = batch[0].sampling
        kwargs = self._decoding_kwargs(sampling)
        if self._adapters:
            kwargs["adapter_names"] = [job.adapter for job in batch]
        device = model.device
        self.batches_run += 1
        with torch.inference_mode():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)  # the worker thread is the model's only user
            out = model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs
            )
            new_tokens = out.sequences[:, width:].cpu()
            steps = torch.stack(out.logits, dim=1).float().log_softmax(-1).cpu()
            chosen = steps.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
            top = steps.topk(sampling.top_logprobs, dim=-1) if sampling.top_logprobs else None

        finished = time.perf_counter()
        results: list[Generation] = []
        for row, job in enumerate(batch):
            ids = new_tokens[row].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in self._eos_ids), None)
            kept = ids[:end] if end is not None else ids
            text = tok.decode(kept, skip_special_tokens=True)
            answered = len(kept)  # the tokens that are the answer's, and have logprobs
            text, stopped = cut_at_stop(text, sampling.stop)
            if stopped:
                answered = self._tokens_before_stop(kept, sampling.stop)
            logprobs = tuple(
                TokenLogprob(
                    token=tok.decode([t]),
                    logprob=float(chosen[row, i]),
                    top=()
                    if top is None
                    else tuple(
                        TokenLogprob(tok.decode([int(alt)]), float(value))
                        for value, alt in zip(top.values[row, i], top.indices[row, i], strict=True)
                    ),
                )
                for i, t in enumerate(kept[:answered])
            )
            results.append(
                Generation(
                    specialist=job.specialist,
                    text=text.strip(),
                    logprobs=logprobs,
                    confidence=Confidence.from_logprobs(logprobs),
                    usage=Usage(prompt_tokens=len(prompts[row]), completion_tokens=len(kept)),
                    latency_s=finished - job.enqueued,
                    model=self.base_ref if job.adapter == BASE_ADAPTER else job.adapter,
                    finish_reason="stop" if end or stopped else "length",
                )
            )
        return results

    def _decoding_kwargs(self, sampling: Sampling) -> dict[str, Any]:
        """``generate``'s arguments for ``sampling`` (settled: its temperature is set)."""
        assert sampling.temperature is not None
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "do_sample": sampling.temperature > 0,
            "output_logits": True,
            "return_dict_in_generate": True,
            "pad_token_id": self._tokenizer.pad_token_id,
        }
        if sampling.temperature > 0:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if sampling.stop:  # stops generating early; the text is still cut at the stop string
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self._tokenizer)
        return kwargs

    def _tokens_before_stop(self, ids: list[int], stop: tuple[str, ...]) -> int:
        """How many of ``ids`` come before the token that completes a stop string."""
        for count in range(len(ids)):
            text = self._tokenizer.decode(ids[: count + 1], skip_special_tokens=True)
            if cut_at_stop(text, stop)[1]:
                return count
        return len(ids)


def _settle(job: _Job, action: Callable[[], Any]) -> None:
    try:
        value = action()
    except Exception as exc:
        _fail(job, exc)
    else:
        _answer(job, value)


def _answer(job: _Job, value: Any) -> None:
    """Answer ``job``'s caller, unless a close answered first or the caller left (cancelled)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        job.future.set_result(value)


def _fail(job: _Job, error: BaseException) -> None:
    """Fail ``job``'s caller with ``error``, unless a close answered first or the caller left."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        job.future.set_exception(error)


def _with_cause(error: _Error, cause: BaseException) -> _Error:
    """``error`` chained to the unexpected exception behind it (``raise error from cause``)."""
    error.__cause__ = cause
    return error


def _first_line(exc: BaseException) -> str:
    """An exception as one readable line: its type and its message's first line."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
