"""Value answers: the quantity a quoted sentence states, for a question that asks for one.

"What is the installation torque of the new-standard hub bolt?" is answered by "97 Nm", not by the
sentence "Standard bolt: 92 Nm; new-standard bolt: 97 Nm." that holds it (answer F1 1.0 against about
0.3). When the embedded model's own phrase is not a value a passage holds (:func:`flywheel.programs.quote.
is_grounded_value`), :func:`value_answer` picks the value phrase of the quoted sentence — a number or
date with its unit words and qualifiers ("every 750 flight hours", "12.5 to 14.5 ohms", "up to 3 mm",
"March 14, 1883") — that the question asks for: the one whose number the model's phrase names, else
the one whose own segment of the sentence (its label in a list of values) holds most of the question's
words, then the one nearest them. Numbers the question itself contains are never answers. Nothing is
generated: the value is verbatim text of the cited passage.
"""

from __future__ import annotations

import re

from flywheel.programs.quote import content_words

_WORD = re.compile(r"\w+")
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_NUMBER = r"[-−]?\d+(?:[,.]\d+)*"
# Words that qualify a value ("every 750 flight hours", "at least 10 minutes", "up to 3 mm").
_QUALIFIER = (
    r"(?:(?:every|each|up to|at least|at most|about|around|approximately|nearly|almost|over|under|"
    r"more than|less than|no more than|between|from|within|below|above|some|only|just)\s+)?"
)
_CURRENCY = r"(?:(?:USD|EUR|GBP|US\$|\$|€|£)\s?)?"
# A unit word: short lowercase/uppercase tokens after the number ("US qt", "Nm", "in-lb", "flight hours").
_UNIT_WORD = r"(?:[A-Za-z°%][\w°%/\-]*\.?)"
_STOP_UNITS = frozenset(
    {
        "and", "or", "the", "a", "an", "of", "to", "in", "on", "at", "for", "is", "are", "was", "were",
        "be", "by", "with", "from", "that", "which", "who", "when", "while", "after", "before", "if",
        "it", "this", "these", "those", "as", "than", "then", "must", "may", "can", "should", "will",
        "shall", "not", "has", "have", "had", "but", "without", "until", "since",
        "unless", "into", "onto", "during", "he", "she", "they", "we", "you", "i", "his", "her", "their",
        "its", "our", "there",
    }
)  # fmt: skip
_DATE = rf"{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}}|{_MONTH}\s+\d{{4}}"
_VALUE_START = re.compile(rf"{_QUALIFIER}(?:{_DATE}|{_CURRENCY}{_NUMBER})", re.IGNORECASE)
_RANGE_TAIL = re.compile(rf"\s*(?:to|and|-|–|—)\s*{_CURRENCY}{_NUMBER}")
_UNIT = re.compile(rf"\s*({_UNIT_WORD})")
MAX_UNIT_WORDS = 4

# Questions that ask for a quantity, a time or a date.
_VALUE_QUESTION = re.compile(
    r"\bhow (?:many|much|long|often|far|old|thick|large|big|heavy|high|fast|wide|deep|soon|frequently)\b|"
    r"\b(?:at|above|below|under|over|within|up to|by) (?:what|which) (?:\w+ )?(?:rate|speed|altitude|"
    r"temperature|pressure|age|time|height|depth|distance|weight|interval)?\b|"
    r"\bwhat (?:year|date|day|month|time)\b|\bin (?:what|which) year\b|^\W*(?:\w+\W+)?when\b|"
    r"\b(?:torque|pressure|capacity|fee|cost|price|weight|limit|maximum|minimum|rate|interval|altitude|"
    r"speed|temperature|distance|length|width|height|depth|thickness|size|duration|salary|allowance|"
    r"amount|percentage|frequency|resistance|voltage|consumption|time)\b",
    re.IGNORECASE,
)


def asks_for_value(question: str) -> bool:
    """Whether ``question`` asks for a quantity, a time or a date."""
    return bool(_VALUE_QUESTION.search(question))


def value_phrases(sentence: str) -> list[tuple[int, int]]:
    """Character spans of the value phrases in ``sentence``: qualifier, number or date, range, units."""
    spans: list[tuple[int, int]] = []
    position = 0
    while (match := _VALUE_START.search(sentence, position)) is not None:
        start, end = match.start(), match.end()
        if start > 0 and (sentence[start - 1].isalnum() or sentence[start - 1] in "-_"):
            position = end  # part of an identifier ("N407SK", "SKP-PTP-75-1024"), not a value
            continue
        if end < len(sentence) and (sentence[end].isalnum() or sentence[end] in "-_"):
            # Glued units and suffixes stay with the value ("5mm", "3rd", "750-hour"); an identifier
            # ("23-0417", "4B2") is not a value.
            glued = re.match(r"[A-Za-z]{1,4}\b|-[A-Za-z]+\b", sentence[end:])
            if glued is None:
                position = end
                continue
            end += glued.end()
        if _is_label(sentence, start, end):
            position = end
            continue
        tail = _RANGE_TAIL.match(sentence, end)
        end = _units_end(sentence, tail.end() if tail else end)
        spans.append((start, end))
        position = end
    return spans


_LABEL_BEFORE = re.compile(r"(?:^|>)[\s#*>|\-§]*$")
_LABEL_AFTER = re.compile(r"\.?(?:\s+[A-Z]|\s*$)")


def _is_label(sentence: str, start: int, end: int) -> bool:
    """A section or list number ("2.1 Scheduled: …", "… > 3."), not a value: it opens the sentence (or
    follows a heading path's ">") and is followed by a capitalised word or nothing."""
    return bool(_LABEL_BEFORE.search(sentence[:start]) and _LABEL_AFTER.match(sentence, end))


def _units_end(sentence: str, cursor: int) -> int:
    """Where the unit words after a number end: up to four words ("US qt per flight hour"), stopping at a
    function word, punctuation or a capitalised name ("in 1819 Raffles")."""
    end, words = cursor, 0
    while words < MAX_UNIT_WORDS and (unit := _UNIT.match(sentence, cursor)) is not None:
        word = unit.group(1).rstrip(".")
        if word.lower() in _STOP_UNITS or (len(word) > 2 and word[0].isupper() and word[1:].islower()):
            break
        cursor = unit.end()
        if word.lower() != "per":  # "0.25 US qt per flight hour": a unit only with what follows
            words += 1
            end = cursor
    return end


def _numbers(text: str) -> set[str]:
    return {w.replace(",", "") for w in re.findall(_NUMBER, text)}


def value_answer(question: str, sentence: str, generated: str = "") -> str | None:
    """The value phrase of ``sentence`` that answers ``question``, or None when it holds none.

    Preference: a value whose number the model's ``generated`` phrase also names; then the question's words
    in the value's own segment, then closeness to them anywhere in the sentence; ties go to the earlier value.
    """
    asked = _numbers(question)
    candidates = [(start, end) for start, end in value_phrases(sentence) if not _numbers(sentence[start:end]) <= asked]
    if not candidates:
        return None
    named = _numbers(generated) - asked
    if named:
        chosen = [c for c in candidates if _numbers(sentence[c[0] : c[1]]) & named]
        if chosen:
            candidates = chosen
    if len(candidates) == 1:
        return _clean(sentence[candidates[0][0] : candidates[0][1]])
    wanted = {_stem(w) for w in content_words(question) if not w.isdigit()}
    words = [(m.start(), _stem(m.group(0).lower())) for m in _WORD.finditer(sentence)]
    anchors = [i for i, (_, word) in enumerate(words) if word in wanted]

    def fit(span: tuple[int, int]) -> tuple[int, float]:
        """The question's words in the value's own segment of the sentence (its label in a list of values:
        "new-standard bolt: 97 Nm"), then closeness to the question's words anywhere in the sentence."""
        left = max(sentence.rfind(b, 0, span[0]) for b in _SEGMENT_BREAKS) + 1
        right = min((i for i in (sentence.find(b, span[1]) for b in _SEGMENT_BREAKS) if i >= 0), default=len(sentence))
        label = sum(1 for offset, word in words if left <= offset < right and word in wanted)
        inside = [i for i, (offset, _) in enumerate(words) if span[0] <= offset < span[1]]
        near = sum(1.0 / min(abs(a - i) for i in inside) for a in anchors if a not in inside) if inside else 0.0
        return label, near

    best = max(candidates, key=lambda span: (*fit(span), -span[0]))
    return _clean(sentence[best[0] : best[1]])


_SEGMENT_BREAKS = (";", ",", "|", " / ", "\n", " and ", " but ")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _clean(phrase: str) -> str:
    return phrase.strip(" ,;:()[]").rstrip(".")
