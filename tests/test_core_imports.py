"""The core, the speed code and the CLI must run where only torch and numpy exist (the GPU
machine, a training box); tests/test_layout.py checks the same on the source."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CODE = """
import builtins
real = builtins.__import__
def guarded(name, *a, **k):
    if name.split('.')[0] in ('streamlit', 'plotly', 'pandas'):
        raise ImportError('the core imported ' + name)
    return real(name, *a, **k)
builtins.__import__ = guarded
import bnviz.config, bnviz.data, bnviz.model, bnviz.trainer, bnviz.runs.jobs, bnviz.runs.store
import bnviz.inside, bnviz.runs.runner, bnviz.experiments, bnviz.cli, bnviz.speed.perf
import bnviz.speed.lenet, bnviz.bias, bnviz.stats, bnviz.evaluation
from bnviz.config import make_config
from bnviz.trainer import train
print(train(make_config(dataset='subset', train_size=256, epochs=1))['status'])
"""


@pytest.mark.slow
def test_core_needs_neither_streamlit_nor_plotly_nor_pandas():
    r = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "finished"
