"""Draw docs/deskew.png: the most slanted official test digit of each class, as read and deskewed.

python scripts/deskew_figure.py --out docs/deskew
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_fc.data import load_embedded
from study.analysis.deskew_figure import deskew_examples, draw_deskew_examples
from study.analysis.report import export_images
from study.errors import UserError


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/deskew"), help="file stem (default docs/deskew)")
    a = p.parse_args(argv)
    _, _, x_test, y_test = load_embedded()
    ex = deskew_examples(x_test, y_test)
    fig = draw_deskew_examples(ex, title="Deskewing: the most slanted test digit of each class (top) and deskewed")
    try:
        for path in export_images({a.out.name: fig}, a.out.parent, formats=("png",)):
            print(path)
    except UserError as e:
        sys.exit(f"deskew_figure: error: {e}")


if __name__ == "__main__":
    main()
