"""Benchmarks: ``python build.py bench [NAME ...]``.

Each benchmark is a module here with ``main()`` that prints its figures, the last line as
``key=value ...``. Figures are recorded in docs/BENCHMARKS.md, never asserted by timed tests.
"""
