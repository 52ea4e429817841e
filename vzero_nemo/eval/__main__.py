"""The evaluation suite's command line (see `vzero_nemo.eval.suite`).

    python -m vzero_nemo.eval run --weights runs/tiny_cpu/pretrained --out runs/tiny_cpu/eval/before \\
        data.path=runs/tiny_cpu/data eval.games=512 [key=value ...]
    python -m vzero_nemo.eval compare --before runs/tiny_cpu/eval/before \\
        --after runs/tiny_cpu/eval/after [--out changes.json]
"""

from __future__ import annotations

import sys

from vzero_nemo.eval.runner import main

if __name__ == "__main__":
    sys.exit(main())
