"""Which writing system a text is in, and the word-split copy that full-text search needs for CJK.

LanceDB's BM25 index splits text at spaces and punctuation. Japanese and Chinese put no spaces
between words, so a whole sentence becomes one token and keyword search finds nothing. For those
texts we keep a *segmented copy*: words separated by spaces, which the same BM25 index then reads
as separate terms.

- ``detect_language`` looks only at scripts (no model, no network): kana means Japanese, Hangul
  means Korean, Han characters alone mean Chinese; anything else is ``"und"`` (undetermined, left
  exactly as before).
- ``segment`` is one deterministic function of the text, used for documents *and* queries, so both
  sides always split the same way: space-separated pieces with Han/kana go through janome's
  morphological analyser (IPA dictionary shipped in its wheel), keeping content words in their
  dictionary form and dropping particles, auxiliaries and symbols, with ASCII stretches such as
  part numbers kept whole; Hangul becomes overlapping character pairs; pieces without CJK
  characters (English words, numbers) pass through unchanged. Chinese text is cut
  with the same Japanese dictionary: not linguistically ideal, but symmetric, which is what BM25
  needs to match a query to a passage.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from janome.tokenizer import Tokenizer

Language = Literal["ja", "zh", "ko", "und"]
CJK_LANGUAGES: frozenset[str] = frozenset({"ja", "zh", "ko"})

_KANA = "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HANGUL = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_KANA_RE = re.compile(f"[{_KANA}]")
_HAN_RE = re.compile(f"[{_HAN}]")
_HANGUL_RE = re.compile(f"[{_HANGUL}]")
_CJK_RE = re.compile(f"[{_KANA}{_HAN}{_HANGUL}]")
_LETTER_RE = re.compile(r"[^\W\d_]")
# Morphemes that carry no search meaning (janome's IPA part-of-speech tags).
_SKIPPED_POS = ("助詞", "助動詞", "記号", "フィラー")

# A text is CJK when at least this share of its letters are CJK characters (a Japanese manual
# quoting English part numbers stays Japanese; an English page with one kanji stays English).
CJK_SHARE = 0.2
# Japanese text uses kana for grammar; Chinese text has none. A few kana among Han characters
# (a stray katakana name in Chinese) do not make a text Japanese.
KANA_SHARE = 0.05

_tokenizer: Tokenizer | None = None
_tokenizer_lock = threading.Lock()


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains any Han, kana or Hangul character."""
    return _CJK_RE.search(text) is not None


def detect_language(text: str) -> Language:
    """``ja``/``zh``/``ko`` when CJK characters make up a fair share of the letters, else ``und``."""
    letters = len(_LETTER_RE.findall(text))
    if not letters:
        return "und"
    kana, han, hangul = (len(pattern.findall(text)) for pattern in (_KANA_RE, _HAN_RE, _HANGUL_RE))
    if (kana + han + hangul) / letters < CJK_SHARE:
        return "und"
    if hangul >= kana + han:
        return "ko"
    return "ja" if kana / (kana + han) >= KANA_SHARE else "zh"


def segment(text: str) -> str:
    """``text`` with its CJK parts split into space-separated words; text without CJK unchanged."""
    if not has_cjk(text):
        return text
    words: list[str] = []
    for piece in text.split():
        if not has_cjk(piece):
            words.append(piece)
        elif _HAN_RE.search(piece) or _KANA_RE.search(piece):
            words += _morphemes(piece)
        else:
            words += _hangul_words(piece)
    return " ".join(words)


def _morphemes(piece: str) -> list[str]:
    """Content words of a Japanese/Chinese piece; ASCII stretches (``PW127M``, ``SK-EB-2024-11``) kept whole."""
    tokenizer = _janome()
    with _tokenizer_lock:  # one analysis at a time: janome's tokenizer keeps per-call state
        tokens = list(tokenizer.tokenize(piece))
    words: list[str] = []
    plain = ""
    for token in tokens:
        if token.surface.isascii():
            plain += token.surface
            continue
        if plain:
            words.append(plain)
            plain = ""
        if token.part_of_speech.startswith(_SKIPPED_POS):
            continue
        base = token.base_form if token.base_form and token.base_form != "*" else token.surface
        words.append(base)
    if plain:
        words.append(plain)
    return words


def _hangul_words(piece: str) -> list[str]:
    words: list[str] = []
    for part in re.split(f"([{_HANGUL}]+)", piece):
        if not part:
            continue
        words += _pairs(part) if _HANGUL_RE.match(part) else [part]
    return words


def _pairs(run: str) -> list[str]:
    """Overlapping character pairs (the usual dictionary-free unit for Korean/CJK search)."""
    return [run] if len(run) < 3 else [run[i : i + 2] for i in range(len(run) - 1)]


def _janome() -> Tokenizer:
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            try:
                from janome.tokenizer import Tokenizer
            except ImportError as exc:  # a declared dependency; only a broken install lacks it
                from flywheel.errors import FlywheelError

                raise FlywheelError(
                    "The Japanese tokenizer (janome) is not installed.",
                    hint="Reinstall Flywheel's dependencies: pip install -c constraints.txt janome",
                ) from exc
            _tokenizer = Tokenizer()
        return _tokenizer
