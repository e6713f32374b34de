"""Distinctive terms of a text, found by their shape, not a dictionary: words with
inner capitals (PostgreSQL, gRPC), acronyms (AWS, GPUs), letters with digits
(A100), symbols (C++), lowercase words no English word looks like (pgvector,
dbt), capitalised words inside a sentence (Celery, Kafka; a run of them is one
name: Lumen Health) and numbers with a unit (40,000 PDFs). Speech recognition's
context (stt_context.py) and interview scoring (scoring.py) both use them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_LIMIT = 24

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'.+#-]*[A-Za-z0-9+#]|[A-Za-z0-9]")
_NUMBER_WITH_UNIT = re.compile(r"\b\d[\d,.]*\d?\s?(?:%|[A-Za-z][A-Za-z/]*)")
_SENTENCE_END = re.compile(r"(^|[.!?;•\n]|\s[-*]\s)\s*$")
_VOWELS = frozenset("aeiouy")
# The two-consonant starts English words have; a lowercase word starting with another pair is a name.
_ONSETS = frozenset(
    "bl br ch cl cr dr dw fl fr gh gl gn gr kl kn kr ph pl pr ps qu "
    "sc sh sk sl sm sn sp st sv sw th tr tw wh wr".split()
)


@dataclass
class _Found:
    term: str
    score: int
    first: int
    count: int = 0


def distinctive_terms(texts: Iterable[str], limit: int = DEFAULT_LIMIT) -> list[str]:
    """The distinctive terms of `texts`, deduplicated (case-insensitively; a term
    sharing a word with a better one is left out), most distinctive first, then
    the most frequent, then the first seen."""
    found: dict[str, _Found] = {}
    offset = 0
    for text in texts:
        for term, score, start in _candidates(text):
            entry = found.setdefault(term.lower(), _Found(term, score, offset + start))
            entry.count += 1
            if score > entry.score:
                entry.term, entry.score = term, score
        offset += len(text) + 1
    chosen: list[str] = []
    taken: set[str] = set()
    for entry in sorted(found.values(), key=lambda e: (-e.score, -e.count, e.first)):
        words = set(entry.term.lower().split())
        if len(chosen) == limit:
            break
        if not words & taken:
            chosen.append(entry.term)
            taken |= words
    return chosen


def word_set(text: str) -> set[str]:
    """The words (and numbers) of `text`."""
    return {m.group(0) for m in _TOKEN.finditer(text)}


def concrete_terms(text: str) -> list[str]:
    """The terms of `text` that are names or technical by their shape (not a capitalised word
    that merely starts a sentence, nor a number), in order, each once."""
    seen: dict[str, str] = {}
    for term, score, _ in _candidates(text):
        if score >= 2 and not term[0].isdigit():
            seen.setdefault(term.lower(), term)
    return list(seen.values())


def _candidates(text: str) -> Iterable[tuple[str, int, int]]:
    """(term, score, offset) of each number with a unit and each word that
    scores; a run of capitalised terms is one (Lumen Health, NVIDIA Triton)."""
    for match in _NUMBER_WITH_UNIT.finditer(text):
        unit = match.group(0).split()[-1].lstrip("0123456789,.")
        if unit and unit.lower() not in COMMON_WORDS:
            yield " ".join(match.group(0).split()), 2, match.start()
    run: list[tuple[str, int, int, int]] = []  # (word, score, start, end)
    for match in _TOKEN.finditer(text):
        word = match.group(0).rstrip(".'")
        score = _score(word, sentence_start=bool(_SENTENCE_END.search(text, 0, match.start())))
        name = score >= 2 and word[0].isupper()
        if run and not (name and text[run[-1][3] : match.start()] == " "):
            yield _joined(run)
            run = []
        if name:
            run.append((word, score, match.start(), match.start() + len(word)))
        elif score:
            yield word, score, match.start()
    if run:
        yield _joined(run)


def _joined(run: list[tuple[str, int, int, int]]) -> tuple[str, int, int]:
    return " ".join(word for word, *_ in run), max(score for _, score, *_ in run), run[0][2]


def _score(word: str, sentence_start: bool) -> int:
    """3: a term by its shape; 2: a name, or a word no English word looks like;
    1: a capitalised word that only starts a sentence; 0: ordinary English."""
    letters = [c for c in word if c.isalpha()]
    lower = word.lower()
    if not letters or (lower in COMMON_WORDS and not _is_acronym(letters)):
        return 0
    if (
        any(c.isdigit() for c in word)
        or any(c in "+#" for c in word)
        or _is_acronym(letters)
        or any(a.islower() and b.isupper() for a, b in zip(word, word[1:]))
    ):
        return 3
    if word[0].isupper() and sentence_start:
        return 0 if lower.endswith(("ed", "ing")) else 1  # "Designed ..." starts many a resume line
    if word[0].isupper():
        return 2
    if not _VOWELS & set(lower):
        return 2
    if len(lower) > 2 and lower[0] not in _VOWELS and lower[1] not in _VOWELS and lower[:2] not in _ONSETS:
        return 2
    return 0


def _is_acronym(letters: list[str]) -> bool:
    """AWS, and its plural GPUs."""
    if len(letters) > 2 and letters[-1] == "s":
        letters = letters[:-1]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


# Ordinary English that starts sentences or follows numbers in resumes, and the fillers of
# spoken answers ("hmm" looks like no English word): never a term.
COMMON_WORDS = frozenset(
    """
a about above across after again against all almost also always am among an and another any are around as at
away back be because been before being below best better between both but by can could day days did do does
done down during each early either else end enough even ever every few first for from full further get good
great had has have having he her here him his how however i if in into is it its just last later least less
like long made make many may me more most much must my near never new next no not now of off often on once one
only or other our out over own part per same see several she should since so some such than that the their
them then there these they this those through time times to too top two under until up upon us use used uses
using very was way we well were what when where which while who whom why will with within without would year
years yet you your
led lead leads built builds build moved moves runs ran run cut cuts wrote writes write owns owned designed
designs developed develops managed manages created creates improved improves reduced reduces added adds
increased increases launched launches maintained maintains migrated migrates implemented implements worked
works work working delivered delivers shipped ships mentored mentors helped helps responsible experience
experienced skills skill summary education university college bachelor master degree present current
team teams project projects company companies role roles senior junior principal staff engineer
engineers engineering developer developers manager intern internship speaker member
january february march april june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
hour hours minute minutes second seconds week weeks month months percent people users customers
hmm hm mm mhm um umm uh uhm er erm ah oh okay ok yeah yes
""".split()
)
