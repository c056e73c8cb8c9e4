"""The pre-router distils the lead's routing: a scripted lead delegates a new kind of request in
router mode (real SDK, real SmolLM2, real database), the transcripts become labels, and after
retraining cascade sends that kind to the specialist. Only the paid lead is scripted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from distill.prerouter.labels import transcript_labels
from distill.prerouter.seed import catalog_examples
from distill.prerouter.training import train_and_register
from distill.prerouter.versions import RouterVersions
from orchestrator.lead import LeadConfig
from orchestrator.prerouter import MiniLMEmbedder
from orchestrator.prerouter_learned import LearnedPreRouter
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, reply, tool_calls
from orchestrator.transcripts import TranscriptStore
from specialists.catalog import Catalog, Specialist
from specialists.local import LocalBackend
from tests.helpers.routing_prompts import TRANSLATE, base_examples
from tests.helpers.stores import open_store

SHORT = {"generation": {"max_tokens": 8}}


def catalog() -> Catalog:
    """The default catalog and a translation specialist with no examples of its own (as a
    specialist fresh from distillation may be): only the lead's delegations can teach it."""
    translate = Specialist(
        name="translate", description="Translates text.", system_prompt="Translate the text."
    )
    short = Catalog.default().with_overrides({n: SHORT for n in ("math", "code", "email")})
    return Catalog([*short, translate]).with_overrides({"translate": SHORT})


@pytest.fixture(scope="module")
async def smollm2(smollm2_dir: Path) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(smollm2_dir, base_ref="smollm2-135m")
    yield backend
    await backend.aclose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:
    opened = await open_store(TranscriptStore, database_url)
    yield opened
    await opened.database.close()


async def test_cascade_sends_a_kind_the_lead_delegated_to_its_specialist_after_retraining(
    smollm2: LocalBackend, store: TranscriptStore, tmp_path: Path
) -> None:
    embedder, served = MiniLMEmbedder(), catalog()
    versions = RouterVersions(tmp_path)
    new_prompt = "Translate into Dutch: the museum opens at nine."

    seed = [*base_examples(), *catalog_examples(served)]
    before = train_and_register(
        seed, [], catalog=served, embedder=embedder, versions=versions, promote=True
    )
    assert before.unlearned == ("translate",)  # one description: too few to learn from
    router = LearnedPreRouter(served, embedder, before.model, version=before.version.version)
    assert router.route(new_prompt).specialist is None

    script = []
    for prompt in TRANSLATE:
        script += [tool_calls(("translate_specialist", {"request": prompt})), reply("Done.")]
    with ScriptedLead(script) as lead:
        config = LeadConfig(
            model="gpt-4o-mini", base_url=lead.base_url, api_key="sk-test", max_retries=0
        )
        orchestrator = Orchestrator(
            catalog=served, backend=smollm2, lead=config, store=store, prerouter=router
        )
        for prompt in TRANSLATE:
            result = await orchestrator.run(prompt, "router")
            assert result.specialists == ["translate"], result
    lead.assert_complete()

    labels = await transcript_labels(store, served.names, max_runs=100)
    assert sorted(label.prompt for label in labels) == sorted(TRANSLATE)
    assert {label.label for label in labels} == {"translate"}

    after = train_and_register(
        [*seed, *labels],
        [],
        catalog=served,
        embedder=embedder,
        versions=versions,
        promote=True,
    )
    assert after.promoted and after.unlearned == () and "translate" in after.model.classes
    retrained = LearnedPreRouter(served, embedder, after.model, version=after.version.version)
    assert retrained.route(new_prompt).specialist == "translate"
    # The math, code and email kinds still go where they went.
    assert retrained.route("Solve 5x + 2 = 17.").specialist == "math"

    with ScriptedLead([reply("Het museum gaat om negen uur open.")], repeat_last=True) as lead:
        config = LeadConfig(
            model="gpt-4o-mini", base_url=lead.base_url, api_key="sk-test", max_retries=0
        )
        orchestrator = Orchestrator(
            catalog=served, backend=smollm2, lead=config, store=store, prerouter=retrained
        )
        result = await orchestrator.run(new_prompt, "cascade")
    assert result.route in ("cascade:accepted:translate", "cascade:escalated:translate")
    assert result.specialists[0] == "translate"
