"""The library's command line: what an operator runs against a deployment's warehouse.

    python -m postsales.cli evaluate --as-of DATE forecast, backtest, health vs outcome, review and report
                                                  for any warehouse (POSTSALES_WAREHOUSE_URL), without Airflow

In the image: ``docker compose run --rm airflow-cli python -m postsales.cli evaluate --as-of DATE``.
The developer commands (`make run`, `make demo`, `make summary`) are not part of the library:
they are developer tools in the repository's ``devtools/`` folder, which the image does not contain.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date


def run_evaluation(as_of: date) -> None:
    """What the model_evaluation DAG does for one date, in this process (no Airflow needed): the
    same steps (postsales.evaluation.STEPS) and report; a date before the data is not refused."""
    from postsales import evaluation

    for step in evaluation.STEPS:
        started = time.monotonic()
        step(as_of)
        print(f"{step.__name__} as of {as_of}: {time.monotonic() - started:.1f}s")
    print(f"report: {evaluation.write_report(as_of)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m postsales.cli", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    evaluate = sub.add_parser("evaluate", help="model evaluation as of a date, straight against the warehouse")
    evaluate.add_argument("--as-of", required=True, help="evaluation date E (YYYY-MM-DD), e.g. a month's last day")
    args = parser.parse_args(argv)

    if args.command == "evaluate":
        run_evaluation(date.fromisoformat(args.as_of))
    return 0


if __name__ == "__main__":
    sys.exit(main())
