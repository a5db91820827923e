"""`make compile`: build the gateway's hot path with mypyc, beside its sources.

The modules are listed in gateway/compiled.py. mypyc type-checks them as ``mypy --strict``
does, writes C into ``build/`` and puts one extension module beside each source, which
Python then imports in its place. ``make clean-compiled`` removes them. Needs a C compiler and
the Python headers (Debian: gcc, python3-dev), which this machine and the gateway image's
build stage have.

    .venv/bin/python scripts/compile.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.compiled import MODULES, built, source  # noqa: E402


def main() -> int:
    """Compile every module of the hot path; return mypyc's exit status."""
    started = time.monotonic()
    sources = [str(source(m).relative_to(ROOT)) for m in MODULES]
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", *sources],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-6000:])
        return done.returncode
    missing = [m for m in MODULES if not built(m)]
    if missing:
        sys.stderr.write(f"compile: no compiled file for {', '.join(missing)}\n")
        return 1
    for module in MODULES:  # current now, even where an unchanged C file was not rebuilt
        for path in built(module):
            path.touch()
    seconds = time.monotonic() - started
    print(f"compile: {len(MODULES)} modules of the hot path built with mypyc in {seconds:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
