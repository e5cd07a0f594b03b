"""Run benchmarks by name (``oracle-stage1`` -> module ``oracle_stage1``); all when none given."""

import importlib
import pkgutil
import sys

from . import __path__ as _bench_path


def available() -> list[str]:
    return sorted(i.name.replace("_", "-") for i in pkgutil.iter_modules(_bench_path) if not i.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    for name in names:
        print(f"== bench {name}", flush=True)
        importlib.import_module(f"{__package__}.{name.replace('-', '_')}").main()
    return 0


sys.exit(main(sys.argv[1:]))
