"""Seconds to import streamlit, render the landing page and then the live lab, in this fresh
process through AppTest (no browser; lab_latency.py times a real one). Prints one JSON line;
benchmarks/bench.py runs it.

    python benchmarks/app_render.py
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BNVIZ_DB", os.path.join(tempfile.mkdtemp(prefix="bnviz-bench-"),
                                               "runs.sqlite"))
sys.path.insert(0, str(ROOT))
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest  # noqa: E402

t1 = time.perf_counter()
at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
at.run()
t2 = time.perf_counter()
errors = [e.value for e in at.exception]
at.switch_page("pages/lab.py")
at.run()
t3 = time.perf_counter()
errors += [e.value for e in at.exception]
print(json.dumps(dict(import_streamlit_s=t1 - t0, first_render_s=t2 - t1,
                      lab_render_s=t3 - t2, errors=errors)))
