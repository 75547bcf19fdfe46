"""Reading results: text summaries, the HTML report and its figures, export, test set, rerun."""

from hpsearch.reporting._export import to_csv, to_json
from hpsearch.reporting._summaries import describe_run, describe_trial, ranges_table

__all__ = ["describe_run", "describe_trial", "ranges_table", "to_csv", "to_json"]
