"""The report: aggregate runs over seeds, test differences between methods on paired runs, and
write one self-contained HTML file (plus Markdown and a flat CSV) that puts accuracy, robustness
and cost side by side.

    from tuneoff.report import write_report
    write_report("results")  # -> results/report.html, report.md, runs.csv
"""
from tuneoff.report.build import build_sections, write_report
from tuneoff.report.frame import aggregate, frame_metric, method_labels, to_frame
from tuneoff.report.stats import bootstrap_p, paired_tests, pareto_front, wilcoxon_p

__all__ = ["to_frame", "aggregate", "paired_tests", "write_report", "build_sections", "frame_metric",
           "method_labels", "bootstrap_p", "wilcoxon_p", "pareto_front"]
