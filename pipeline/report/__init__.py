"""The comparison's report: tables, summary.json, figures and report.md from evaluation metrics and training logs.

Three steps, one verb and one rule each (rules/report.smk), so a figure can be redrawn without re-reading traces:
  aggregate  eval/<model>/<benchmark>/metrics.json (+ the k1/k2 traces beside it) and models/<run>/train_log.jsonl
             -> summary.json and the tidy tables: accuracy.csv, retries.csv, learning_curves.csv, ...
             (aggregate.py; what separates the run from the paper, and the provenance, in departures.py);
  figures    the tables -> figures/<name>.{png,pdf} (seaborn), one per function registered with @figure(name)
             (figures.py);
  markdown   summary.json + accuracy.csv -> report.md, one function per section registered with @section(name)
             (markdown.py).
Numbers and names print the same everywhere (format.py). At paper scale the figures and report.md add the paper's
own numbers (pipeline/paper_numbers.yaml).

A model is `base` or `<variant>_s<seed>` (the workflow's names, recorded in each metrics.json). Accuracy is a
fraction; the report prints percent.

Below, the names the workflow (rules/common.smk: FIGURES) and the tests use; import the rest from their module.
The functions `figures`, `markdown` and `departures` are not re-exported: they share their module's name.
"""

from pipeline.report.aggregate import accuracy_table, curves_summary, k_attempt_curves, read_csv
from pipeline.report.departures import PAPER_AVERAGE, PAPER_PER_BENCHMARK
from pipeline.report.figures import FIGURES

__all__ = [
    "FIGURES",
    "PAPER_AVERAGE",
    "PAPER_PER_BENCHMARK",
    "accuracy_table",
    "curves_summary",
    "k_attempt_curves",
    "read_csv",
]
