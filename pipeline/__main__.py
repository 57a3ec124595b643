"""`python -m pipeline <verb> ...`: the verbs the Snakemake rules call, one module per step of the workflow.

    pipeline/verbs/node.py      config, doctor, with-gpus           the run and the node
    pipeline/verbs/data.py      download, prepare-synthetic,        question sets as jsonl records
                                prepare-math, prepare-benchmark
    pipeline/verbs/models.py    build-base, from-gguf, push         model folders: made, converted, shared
    pipeline/verbs/train.py     train                               PPO (or GRPO) of one variant x seed
    pipeline/verbs/evaluate.py  evaluate, parallel-eval,            k-attempt dialogues, their metrics, the
                                flip-probe, eval-metrics,           controls and the second grader's audit
                                grader-audit
    pipeline/verbs/report.py    aggregate, figures, report,         tables, summary.json, figures, report.md,
                                dvc-views, feedback-ablation-report DVC's views, the ablation's report

Every verb takes `--config`, a YAML file (e.g. config.yaml; the rules pass the workflow's whole resolved
configuration as a JSON file) or an inline JSON mapping, resolved and validated by `pipeline.config` before any
work starts. Bad configuration or input data ends the command with a one-paragraph error (exit code 2), not a
traceback; a training job whose SLURM time is up stops with a checkpoint and exit code 75.
"""

from __future__ import annotations

import logging
import sys

from pipeline import config as config_mod
from pipeline import progress
from pipeline.io import DataError, PipelineError
from pipeline.time_limit import EXIT_CODE, TimeLimitReached
from pipeline.verbs import data, evaluate, models, node, parser, report, train  # noqa: F401 (they register verbs)

VERB_MODULES = (node, data, models, train, evaluate, report)  # the order of `--help`


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.splitlines()[0], VERB_MODULES).parse_args(argv)
    progress.library_bars_off()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.fn(args)
    except TimeLimitReached as e:  # not a failure: the job's time is up; running the command again resumes
        print(f"stopped: {e}", file=sys.stderr)
        return EXIT_CODE
    except (config_mod.ConfigError, DataError, PipelineError) as e:  # bad input (ModelLoadError too): 2; else 1
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, PipelineError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
