import math

import pytest

from specialists.backend import Confidence, TokenLogprob


def test_mean_and_min_probability() -> None:
    logprobs = [TokenLogprob("a", math.log(0.9)), TokenLogprob("b", math.log(0.5))]
    confidence = Confidence.from_logprobs(logprobs)
    assert confidence.mean_prob == pytest.approx(0.7)
    assert confidence.min_prob == pytest.approx(0.5)


def test_no_tokens_means_no_confidence() -> None:
    assert Confidence.from_logprobs([]) == Confidence(0.0, 0.0)
