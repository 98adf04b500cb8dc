"""Feedback classification quality and cost: zero-shot LM, the best LM-program candidate, distilled heads, cascade.

On the shared airline_feedback data (train 2,000 labelled, dev 1,000 labelled, unlabeled 5,000), in one run:

- **distilled heads** (``flywheel optimize classifier --optimizer distill``) trained on the first 50 / 200 /
  2,000 train labels, and on teacher labels (the first ``--teacher-rows`` unlabelled rows labelled by
  the task LM, SmolLM2-135M, as ``[teacher_lm]`` is unset), scored on **all 1,000 dev rows**;
- **LM programs** on the first ``--lm-rows`` dev rows (the embedded LM decodes one row in several
  seconds on this shared machine): zero-shot, and the best LM candidate of the default search
  (``flywheel optimize classifier``: zero-shot vs class-balanced 2-shot demos, scored on a validation
  split carved from train);
- **cascade**: the 2,000-label head plus that LM program, threshold chosen by the search on the
  validation split within an LM budget of ``classify.cascade_lm_share`` (20 %) of the rows.

Accuracy and macro-F1 of sentiment and of reason (reason: on gold-negative rows; a row not predicted
negative has no reason and counts as wrong), rows/s, and LM calls per 1,000 rows. Head throughput is
measured on unique texts with the embedding cache off (every row embedded), and again with the
cache warm. Per-class scores and confusion matrices of the 2,000-label head follow the table.

Run: python -m bench.classify [--lm-rows 24] [--search-lm-rows 12] [--teacher-rows 20] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import SHARED_DATA, markdown_table, write_section

FEEDBACK = SHARED_DATA / "airline_feedback"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lm-rows", type=int, default=24)
    parser.add_argument("--search-lm-rows", type=int, default=12)
    parser.add_argument("--teacher-rows", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="8 LM rows, 4 search rows, 8 teacher rows")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.quick:
        args.lm_rows, args.search_lm_rows, args.teacher_rows = 8, 4, 8
    if not (FEEDBACK / "dev.csv").exists():
        raise SystemExit(f"{FEEDBACK} is missing: this benchmark needs ../shared/data")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                "FLYWHEEL_HOME": str(Path(tmp) / "home"),
                "FLYWHEEL_LM__CACHE": "false",
                "FLYWHEEL_LM__N_THREADS": os.environ.get("FLYWHEEL_LM__N_THREADS", "1"),
                "MLFLOW_TRACE_SAMPLING_RATIO": "0",
            }
        )
        body = run(args)
    print(body)
    if not args.no_write:
        write_section(
            "classify",
            "Feedback classification: zero-shot LM, LM candidates, distilled heads, cascade",
            body,
            f"python -m bench.classify --lm-rows {args.lm_rows} --search-lm-rows "
            f"{args.search_lm_rows} --teacher-rows {args.teacher_rows}",
        )


def scores_of(gold: list[Any], predicted: list[dict[str, Any]]) -> dict[str, float]:
    from flywheel.evaluate.metrics import score_labels

    sentiment = score_labels([g.sentiment for g in gold], [p.get("sentiment") for p in predicted])
    pairs = [(g.reason, p.get("reason")) for g, p in zip(gold, predicted, strict=True) if g.reason]
    reason = score_labels([g for g, _ in pairs], [p for _, p in pairs]) if pairs else None
    return {
        "accuracy": sentiment.accuracy,
        "macro_f1": sentiment.macro_f1,
        "reason_accuracy": reason.accuracy if reason else float("nan"),
        "reason_macro_f1": reason.macro_f1 if reason else float("nan"),
    }


def lm_answers(program: Any, texts: list[str]) -> tuple[list[dict[str, Any]], list[float]]:
    answers, seconds = [], []
    for text in texts:
        started = time.perf_counter()
        try:
            out = program.ask_lm(text)
            answers.append({"sentiment": out.sentiment, "reason": out.reason})
        except Exception:
            answers.append({"sentiment": None, "reason": None})
        seconds.append(time.perf_counter() - started)
        print(f"  LM row {len(seconds)}/{len(texts)}: {seconds[-1]:.1f} s", flush=True)
    return answers, seconds


def run(args: argparse.Namespace) -> str:
    import torch

    from flywheel.config import load_settings
    from flywheel.evaluate.datasets import dataset_from_rows, read_rows
    from flywheel.lm import configure_dspy
    from flywheel.optimize.classifier_search import balanced_demos, search
    from flywheel.optimize.distill import distill, labelled_texts
    from flywheel.programs.classify import FeedbackClassifier
    from flywheel.programs.classify_head import CachedEmbedder, prepare_text, shared_embedder

    torch.set_num_threads(1)  # on a busy 2-core machine, 1 thread embeds faster than 2 (spinning threads)
    settings = load_settings()
    configure_dspy(settings)
    train = labelled_texts(dataset_from_rows(read_rows(FEEDBACK / "train.csv"), "classifier", name="train").examples)
    dev = labelled_texts(dataset_from_rows(read_rows(FEEDBACK / "dev.csv"), "classifier", name="dev").examples)
    pool = dataset_from_rows(
        read_rows(FEEDBACK / "unlabeled.csv")[: args.teacher_rows], "classifier", name="unlabeled"
    ).examples
    embedder = shared_embedder()
    dev_texts = [r.text for r in dev]
    rows: list[list[Any]] = []

    def row(name: str, n: int, scores: dict[str, float], rate: float | str, calls: float) -> None:
        rows.append(
            [
                name,
                n,
                f"{scores['accuracy']:.3f}",
                f"{scores['macro_f1']:.3f}",
                f"{scores['reason_accuracy']:.3f}",
                f"{scores['reason_macro_f1']:.3f}",
                rate if isinstance(rate, str) else f"{rate:.1f}",
                f"{calls:.0f}",
            ]
        )
        print(rows[-1], flush=True)

    # Distilled heads on 50 / 200 / 2000 labels, scored on all of dev.
    heads = {}
    for n in (50, 200, 2000):
        heads[n] = distill(FeedbackClassifier(), train[:n], embedder=embedder).program
    cold = CachedEmbedder(embedder.embedder, max_rows=0)  # unique texts: every row goes through the embedder
    started, cpu = time.perf_counter(), time.process_time()
    big = heads[2000].head.predict_texts(dev_texts, cold)
    unique_rate = len(dev_texts) / (time.perf_counter() - started)
    unique_cpu_rate = len(dev_texts) / (time.process_time() - cpu)  # rows per CPU-second of this process
    warm = CachedEmbedder(embedder.embedder, max_rows=10_000)
    warm.embed([prepare_text(t) for t in dev_texts])
    started = time.perf_counter()
    heads[2000].head.predict_texts(dev_texts, warm)
    cached_rate = len(dev_texts) / (time.perf_counter() - started)
    head_answers = {n: heads[n].classify_many(dev_texts) for n in heads}
    assert [a["sentiment"] for a in head_answers[2000]] == [b.sentiment for b in big]
    for n in (50, 200, 2000):
        row(
            f"distilled head, {n} train labels",
            len(dev),
            scores_of(dev, head_answers[n]),
            unique_rate if n == 2000 else "≈ same",
            0,
        )

    # Teacher labels: the task LM labels unlabelled rows; the head learns from those labels only.
    zero_shot = FeedbackClassifier()
    teacher, _ = lm_answers(zero_shot, [ex.text for ex in pool])
    from flywheel.optimize.distill import LabelledText

    taught = [
        LabelledText(ex.text, t["sentiment"], t["reason"], "teacher")
        for ex, t in zip(pool, teacher, strict=True)
        if t["sentiment"]
    ]
    teacher_mix = {s: sum(t.sentiment == s for t in taught) for s in ("negative", "neutral", "positive")}
    try:
        taught_head = distill(FeedbackClassifier(), taught, embedder=embedder).program
        row(
            f"distilled head, {len(taught)} teacher labels",
            len(dev),
            scores_of(dev, taught_head.classify_many(dev_texts)),
            "≈ same",
            0,
        )
        teacher_note = f"the teacher's labels were {teacher_mix}"
    except Exception as exc:  # a teacher that gives one label only cannot train a head
        teacher_note = (
            f"the teacher labelled {len(taught)} rows {teacher_mix}: no head can be trained "
            f"({getattr(exc, 'message', exc)})"
        )
        rows.append([f"distilled head, {len(taught)} teacher labels", len(dev), "–", "–", "–", "–", "–", "0"])

    # LM programs on the first --lm-rows dev rows.
    subset = dev[: args.lm_rows]
    subset_texts = [r.text for r in subset]
    zero_answers, zero_s = lm_answers(zero_shot, subset_texts)
    row("LM zero-shot (SmolLM2-135M)", len(subset), scores_of(subset, zero_answers), len(subset) / sum(zero_s), 1000)
    found = search(
        FeedbackClassifier(),
        train,
        embedder=embedder,
        lm_rows=args.search_lm_rows,
        lm_share=settings.classify.cascade_lm_share,
        threads=1,
    )
    cascade_row = next(r for r in found.table if r["candidate"].startswith("cascade"))
    best_lm = cascade_row["lm_program"]
    if best_lm == "zero-shot":
        best_answers, best_s = zero_answers, zero_s
    else:
        candidate = FeedbackClassifier()
        candidate.classify.demos = balanced_demos(train, candidate.labels.sentiments, 2)
        best_answers, best_s = lm_answers(candidate, subset_texts)
    row(
        f"best LM candidate of the search: {best_lm}",
        len(subset),
        scores_of(subset, best_answers),
        len(subset) / sum(best_s),
        1000,
    )
    row(
        "distilled head (2000 labels), same dev rows",
        len(subset),
        scores_of(subset, head_answers[2000][: len(subset)]),
        unique_rate,
        0,
    )
    threshold = float(cascade_row["threshold"])
    confidences = [c["confidence"] for c in heads[2000].head_confidences(subset_texts)]
    routed = [c < threshold for c in confidences]
    mixed = [lm if r else h for r, h, lm in zip(routed, head_answers[2000][: len(subset)], best_answers, strict=True)]
    cascade_s = len(subset) / unique_rate + sum(s for s, r in zip(best_s, routed, strict=True) if r)
    row(
        f"cascade: head + LM {best_lm} below p={threshold:.2f}",
        len(subset),
        scores_of(subset, mixed),
        len(subset) / cascade_s,
        1000 * sum(routed) / len(subset),
    )
    # The cascade's threshold on all of dev: the share of rows that would reach the LM.
    dev_share = sum(b.confidence < threshold for b in big) / len(big)

    table = markdown_table(
        [
            "program",
            "dev rows",
            "accuracy",
            "macro-F1",
            "reason acc.",
            "reason macro-F1",
            "rows/s",
            "LM calls / 1000 rows",
        ],
        rows,
    )
    return "\n\n".join(
        [
            "Shared airline_feedback data; embedded SmolLM2-135M (temperature 0, DSPy cache off, 1 llama.cpp thread) "
            "and the packaged MiniLM embedder (1 torch thread); the machine was shared with other jobs (the LM "
            f"took {sum(zero_s) / len(zero_s):.1f} s per row here). Heads are scored on all 1,000 dev rows; LM programs "  # noqa: E501
            f"and the cascade on the first {len(subset)} dev rows (LM time), next to the head on those same rows. "
            "Reason scores are over gold-negative rows (11-class taxonomy).",
            table,
            f"- Head throughput on unique texts (every row embedded, cache off): **{unique_rate:.0f} rows/s** wall "
            f"clock on the shared machine, {unique_cpu_rate:.0f} rows per CPU-second of the process (what each "
            f"uncontended core would give); with the embedding cache warm (repeated texts): {cached_rate:.0f} rows/s.",
            f"- Search (default `flywheel optimize classifier`): {len(found.table)} candidates on a validation split "
            f"of train ({found.params['validation_rows']} rows; LM candidates on {found.params['lm_rows']} of them, "
            f"{found.lm_calls} LM calls, {found.wall_s:.0f} s): "
            + "; ".join(f"{r['candidate']} {candidate_score(r):.3f}" for r in found.table)
            + f" (objective macro-F1). Winner: **{found.winner}**.",
            f"- Cascade threshold p < {threshold:.2f} (chosen on the validation split within "
            f"{settings.classify.cascade_lm_share:.0%} LM share): {sum(routed)} of {len(subset)} dev rows above went to "  # noqa: E501
            f"the LM; over all 1,000 dev rows {dev_share:.1%} would. Its rows/s adds the measured LM seconds of the "
            "routed rows to the head's time.",
            f"- Teacher: {teacher_note}.",
            per_class(dev, head_answers[2000]),
        ]
    )


def candidate_score(row: dict[str, Any]) -> float:
    """A search candidate's score on the LM-scored validation rows (the head's on all of them when no LM ran)."""
    value = row.get("lm_rows_score")
    return float(row["validation"] if value is None else value)


def per_class(gold: list[Any], predicted: list[dict[str, Any]]) -> str:
    from flywheel.evaluate.metrics import score_labels

    parts = []
    pairs = {
        "sentiment": ([g.sentiment for g in gold], [p.get("sentiment") for p in predicted]),
        "reason (gold-negative rows)": (
            [g.reason for g in gold if g.reason],
            [p.get("reason") for g, p in zip(gold, predicted, strict=True) if g.reason],
        ),
    }
    for name, (golds, preds) in pairs.items():
        s = score_labels(golds, preds)
        parts.append(
            f"**Distilled head (2,000 labels), {name}, all dev rows**: accuracy {s.accuracy:.3f}, "
            f"macro-F1 {s.macro_f1:.3f}\n\n"
            + markdown_table(
                ["class", "precision", "recall", "F1", "support", "predicted"],
                [
                    [c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", c.support, c.predicted]
                    for c in s.classes
                ],
            )
        )
        short = [c[:14] for c in s.columns]
        parts.append(
            "Confusion matrix (gold ↓, predicted →; `(failed)` = no label predicted):\n\n"
            + markdown_table(
                ["gold \\ predicted", *short],
                [[label[:24], *row] for label, row in zip(s.labels, s.matrix, strict=True)],
            )
        )
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()
