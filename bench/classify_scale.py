"""Spark at scale: `flywheel classify --engine spark` on local[2] over >= 1,000,000 feedback rows, resumed once.

Builds the input: the 8,000 distinct tweets of airline_feedback (5,000 unlabelled + 2,000 train + 1,000
dev) replicated to ``--rows`` rows (Parquet, 16 files, generated here in a temporary folder). Trains a
distilled head on the 2,000 train labels, registers it in a throw-away FLYWHEEL_HOME, and runs the real
CLI (``flywheel classify … --engine spark --spark-master local[2] --program-version N``) in a child
process, sampling the resident memory of its whole process tree (driver, JVM, Python workers):

1. **head, unique texts**: the 8,000 distinct tweets once (every row embedded);
2. **head, the big input**, killed after its second finished chunk and rerun with the same command
   (the rerun resumes from the checkpoint); each Python worker keeps an embedding cache keyed by
   the exact text, and its hits and misses are reported per worker;
3. **cascade** (the head plus the zero-shot LM for the ``--cascade-share`` least confident rows of a
   validation split of train) and **LM only** (zero-shot SmolLM2) on small samples: the embedded LM
   decodes a row in seconds.

Run: python -m bench.classify_scale [--rows 1000000] [--lm-sample 12] [--cascade-sample 120] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.report import SHARED_DATA, markdown_table, write_section

FEEDBACK = SHARED_DATA / "airline_feedback"
FILES = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--lm-sample", type=int, default=12)
    parser.add_argument("--cascade-sample", type=int, default=120)
    parser.add_argument("--cascade-share", type=float, default=0.1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not (FEEDBACK / "unlabeled.csv").exists():
        raise SystemExit(f"{FEEDBACK} is missing: this benchmark needs ../shared/data")
    with tempfile.TemporaryDirectory() as tmp:
        body = run(Path(tmp), args)
    print(body)
    if not args.no_write:
        write_section(
            "classify-spark",
            "Feedback classification on Spark local[2]: 1M rows, resumable",
            body,
            f"python -m bench.classify_scale --rows {args.rows} --chunk-rows {args.chunk_rows}",
        )


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cli(args: list[str], env: dict[str, str], *, kill_when: Any = None) -> dict[str, Any]:
    """Run `flywheel classify …` in a child process; wall time, peak tree RSS, output, whether it was killed."""
    command = [str(Path(sys.executable).with_name("flywheel")), "classify", *args]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    peak = 0
    killed = False
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        if kill_when is not None and not killed and kill_when():
            os.killpg(process.pid, signal.SIGKILL)  # as a crash would: no clean-up
            killed = True
        time.sleep(0.5)
    reader.join(timeout=5)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss": peak,
        "code": process.returncode,
        "killed": killed,
        "output": "".join(output),
    }


def cache_stats(directory: Path) -> tuple[int, int, int]:
    hits = misses = workers = 0
    for path in directory.glob("embedding-cache-*.json"):
        data = json.loads(path.read_text())
        hits, misses, workers = hits + data["hits"], misses + data["misses"], workers + 1
    return hits, misses, workers


def run(work: Path, args: argparse.Namespace) -> str:
    import pandas as pd

    os.environ.update(
        {
            "FLYWHEEL_HOME": str(work / "home"),
            "FLYWHEEL_LM__CACHE": "false",
            "MLFLOW_TRACE_SAMPLING_RATIO": "0",
            "FLYWHEEL_CLASSIFY__SPARK_CHUNK_ROWS": str(args.chunk_rows),
        }
    )
    from flywheel.config import load_settings
    from flywheel.evaluate.datasets import dataset_from_rows, read_rows
    from flywheel.optimize.classifier_search import compile_classifier
    from flywheel.optimize.distill import labelled_texts, stratified_split
    from flywheel.programs.classify import FeedbackClassifier
    from flywheel.registry.programs import ProgramRegistry

    texts = list(
        dict.fromkeys(
            [r["text"] for name in ("unlabeled.csv", "train.csv", "dev.csv") for r in read_rows(FEEDBACK / name)]
        )
    )
    repeats = math.ceil(args.rows / len(texts))
    big = work / "feedback-big"
    big.mkdir()
    total = len(texts) * repeats
    per_file = math.ceil(total / FILES)
    replicated = texts * repeats
    for i in range(FILES):
        part = replicated[i * per_file : (i + 1) * per_file]
        pd.DataFrame({"row_id": range(i * per_file, i * per_file + len(part)), "text": part}).to_parquet(
            big / f"part-{i:02d}.parquet", index=False
        )
    unique = work / "unique.parquet"
    pd.DataFrame({"row_id": range(len(texts)), "text": texts}).to_parquet(unique, index=False)
    print(f"input: {total} rows ({len(texts)} distinct texts x {repeats}) in {FILES} Parquet files", flush=True)

    train = dataset_from_rows(read_rows(FEEDBACK / "train.csv"), "classifier", name="train").examples
    head = compile_classifier(FeedbackClassifier(), train, optimizer="distill", objective="macro_f1").program
    registry = ProgramRegistry(load_settings())
    head_version = registry.register("classifier", head, description="distilled head (bench)").version
    # Cascade: route the least confident --cascade-share of a validation split of train to the zero-shot LM.
    rows = labelled_texts(train)
    _, val = stratified_split([r.sentiment for r in rows], 0.2, 0)
    confidences = sorted(c["confidence"] for c in head.head_confidences([rows[i].text for i in val]))
    cascade = FeedbackClassifier(head=head.head, lm_below=confidences[int(len(confidences) * args.cascade_share)])
    cascade_version = registry.register("classifier", cascade, description="cascade (bench)").version
    lm_version = registry.register("classifier", FeedbackClassifier(), description="zero-shot LM (bench)").version

    stats_dir = work / "cache-stats"
    stats_dir.mkdir()
    env = {**os.environ, "FLYWHEEL_LM__N_THREADS": "1"}
    conf = [
        "--spark-conf",
        f"spark.executorEnv.EMBEDDING_CACHE_STATS_DIR={stats_dir}",
        "--spark-conf",
        "spark.driver.memory=2g",
    ]

    def classify(source: Path, out: Path, version: int, **kw: Any) -> dict[str, Any]:
        result = cli(
            [
                str(source),
                "--out",
                str(out),
                "--engine",
                "spark",
                "--spark-master",
                "local[2]",
                "--program-version",
                str(version),
                "--partitions",
                "2",
                *conf,
            ],
            env,
            **kw,
        )
        print(result["output"][-1500:], flush=True)
        return result

    lines: list[list[Any]] = []
    first = classify(unique, work / "unique-out.parquet", head_version)
    hits, misses, workers = cache_stats(stats_dir)
    lines.append(
        [
            "head, distinct texts (cache cold)",
            len(texts),
            f"{len(texts) / first['seconds']:.0f}",
            f"{first['peak_rss'] / 2**30:.2f}",
            f"{hits / max(1, hits + misses):.1%} ({workers} workers)",
            "0",
            "one run",
        ]
    )
    for path in stats_dir.iterdir():
        path.unlink()

    out = work / "big-out.parquet"
    manifest = out.with_name(out.name + ".partial") / "manifest.json"

    def two_chunks_done() -> bool:
        try:
            return len(json.loads(manifest.read_text())["done"]) >= 2
        except (OSError, ValueError):
            return False

    crashed = classify(big, out, head_version, kill_when=two_chunks_done)
    done_before = len(json.loads(manifest.read_text())["done"]) if manifest.exists() else 0
    resumed = classify(big, out, head_version)
    hits, misses, workers = cache_stats(stats_dir)
    written = pd.read_parquet(out, columns=["row_id", "predicted_sentiment"])
    once = len(written) == total and sorted(written["row_id"]) == list(range(total))
    in_order = bool((written["row_id"].diff().fillna(1) == 1).all())  # Spark's split order of the files
    rows_now = total - done_before * args.chunk_rows
    lines.append(
        [
            f"head, {total:,} rows: killed after {done_before} chunks, then resumed",
            total,
            f"{rows_now / resumed['seconds']:.0f} (resumed run)",
            f"{max(crashed['peak_rss'], resumed['peak_rss']) / 2**30:.2f}",
            f"{hits / max(1, hits + misses):.1%} ({workers} workers, {misses:,} misses)",
            "0",
            f"{crashed['seconds'] + resumed['seconds']:.0f} s in all (both attempts, Spark starts included); "
            f"every row exactly once: {once}; in row_id order: {in_order}",
        ]
    )

    if args.cascade_sample:
        lines.append(cascade_line(work, texts, args, cascade, cascade_version, classify))
    if args.lm_sample:
        lines.append(lm_line(work, texts, args, lm_version, classify))
    table = markdown_table(
        [
            "run",
            "rows",
            "rows/s",
            "peak memory (GiB, whole process tree)",
            "embedding cache hit rate",
            "LM calls / 1000 rows",
            "notes",
        ],
        lines,
    )
    return "\n\n".join(
        [
            f"`flywheel classify INPUT --engine spark --spark-master local[2] --partitions 2 --program-version N` in a "
            f"child process (times include starting Spark, about 20 s); input: the {len(texts):,} distinct "
            f"airline_feedback tweets replicated {repeats}x to {total:,} rows in {FILES} Parquet files; resumable "
            f"chunks of {args.chunk_rows:,} rows; 1 torch and 1 llama.cpp thread per Python worker; the machine was "
            "shared with other jobs. The head was trained on the 2,000 train labels.",
            table,
            "The big run repeats each distinct text many times, so each Python worker's embedding cache (keyed by "
            "the exact text) answers most rows; the first row is the honest throughput on distinct texts. The "
            "first attempt of the big run was killed (SIGKILL to its process group) after two finished chunks; the "
            "same command then resumed from the checkpoint and classified only the remaining rows.",
        ]
    )


def cascade_line(
    work: Path, texts: list[str], args: argparse.Namespace, cascade: Any, version: int, classify: Any
) -> list[Any]:
    import pandas as pd

    sample = work / "sample.parquet"
    pd.DataFrame({"text": texts[: args.cascade_sample]}).to_parquet(sample, index=False)
    run_cascade = classify(sample, work / "cascade-out.parquet", version)
    cascade_out = pd.read_parquet(work / "cascade-out.parquet")
    to_lm = int((~cascade_out["justification"].fillna("").str.startswith("distilled head")).sum())
    line = [
        f"cascade (head + zero-shot LM below p={cascade.lm_below:.2f})",
        len(cascade_out),
        f"{len(cascade_out) / run_cascade['seconds']:.2f}",
        f"{run_cascade['peak_rss'] / 2**30:.2f}",
        "–",
        f"{1000 * to_lm / len(cascade_out):.0f}",
        "includes Spark start",
    ]
    return line


def lm_line(work: Path, texts: list[str], args: argparse.Namespace, version: int, classify: Any) -> list[Any]:
    import pandas as pd

    lm_sample = work / "lm-sample.parquet"
    pd.DataFrame({"text": texts[: args.lm_sample]}).to_parquet(lm_sample, index=False)
    run_lm = classify(lm_sample, work / "lm-out.parquet", version)
    return [
        "LM only (zero-shot SmolLM2-135M)",
        args.lm_sample,
        f"{args.lm_sample / run_lm['seconds']:.2f}",
        f"{run_lm['peak_rss'] / 2**30:.2f}",
        "–",
        "1000",
        "includes Spark start",
    ]


if __name__ == "__main__":
    main()
