"""Small labelled prompts for learned pre-router tests (hand-written, one kind per list)."""

from __future__ import annotations

from distill.prerouter.seed import Labelled
from orchestrator.prerouter_model import NONE

MATH = [
    "What is 15% of 240?",
    "Solve 3x - 7 = 11 for x.",
    "A train goes 120 km in 1.5 hours; what is its speed?",
    "Find the derivative of x^3 + 2x.",
    "How many ways can 5 people sit in a row?",
    "What is the sum of the integers from 1 to 50?",
    "Simplify (x^2 - 9)/(x - 3).",
    "If 4 pens cost $6, what do 10 pens cost?",
]
CODE = [
    "Write a Python function that reverses a list.",
    "How do I read a CSV file with pandas?",
    "Fix this SQL query: SELECT * FROM users WHERE;",
    "Implement binary search in Java.",
    "Write a bash script that counts lines in every .py file.",
    "Explain this Python error: IndexError: list index out of range.",
    "Write a JavaScript function to debounce another function.",
    "Write unit tests for a function add(a, b) with pytest.",
]
EMAIL = [
    "Write an email to my landlord about the broken heater.",
    "Draft a polite follow-up email to a recruiter.",
    "Write a thank-you email to a client after our meeting.",
    "Compose an email asking my boss for a day off on Friday.",
    "Suggest a subject line for an email announcing our new office.",
    "Reply to this email and decline the invitation politely.",
    "Write an out-of-office email for my vacation.",
    "Draft an email reminding the team about the deadline.",
]
NONE_PROMPTS = [
    "Write a poem about the autumn sea.",
    "Tell me a story about a dragon and a knight.",
    "What are the health benefits of green tea?",
    "Give me ideas for a weekend trip to Lisbon.",
    "Who was Ada Lovelace?",
    "Pretend you are a pirate and greet your crew.",
    "What should I cook with rice and spinach?",
    "Explain the causes of the French Revolution.",
]
TRANSLATE = [
    "Translate 'good morning' into Italian.",
    "How do you say 'where is the station' in German?",
    "Translate this sentence into Spanish: I love reading books.",
    "What is 'thank you very much' in Japanese?",
    "Translate to French: the weather is lovely today.",
    "Put this into Portuguese: see you tomorrow.",
]


def labelled(prompts: list[str], label: str, source: str = "test") -> list[Labelled]:
    return [Labelled(p, label, source) for p in prompts]


def base_examples() -> list[Labelled]:
    return [
        *labelled(MATH, "math"),
        *labelled(CODE, "code"),
        *labelled(EMAIL, "email"),
        *labelled(NONE_PROMPTS, NONE),
    ]
