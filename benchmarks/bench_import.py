"""Import time: `import jax`, `import equinox` and `import ecliptic`, side by side.

Run: `.venv/bin/python benchmarks/bench_import.py [--runs N]`. Each figure is the wall
time of a fresh interpreter that imports the module and exits, minus nothing (the
interpreter's own start-up is in every row alike); the three commands are run in
alternating rounds and the ratio is the median over rounds of ecliptic's time over
Equinox's in that round. Both libraries import their `nn` submodule eagerly, so the
rows compare like with like. Target (issue 13): ecliptic <= 1.1x Equinox.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


COMMANDS = {
    "python (no import)": "pass",
    "import jax": "import jax",
    "import equinox": "import equinox",
    "import ecliptic": "import ecliptic",
}


def time_once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for code in COMMANDS.values():  # warm the file system cache
        time_once(code)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for r in range(args.runs):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(time_once(COMMANDS[name]))
    ratios = [
        e / q for e, q in zip(samples["import ecliptic"], samples["import equinox"])
    ]
    print(f"{'command':20} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, s in samples.items():
        print(
            f"{name:20} {statistics.median(s) * 1e3:10.0f} "
            f"{min(s) * 1e3:8.0f} {max(s) * 1e3:8.0f}"
        )
    print(
        f"ecliptic / equinox: {statistics.median(ratios):.2f}x "
        f"(median of {args.runs} paired rounds; target <= 1.1x)"
    )


if __name__ == "__main__":
    main()
