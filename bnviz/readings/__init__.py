"""What each question's runs say, computed once, returned as data.

A reading takes a grid's summary (bnviz.runs.results.summarize: one row per arm, mean, 95% CI
and n per metric) and decides, by arm id, which comparisons to make and what they show. Pages,
the findings script and the tests only render or inspect the result, so the dashboard and the
README can never disagree, and every verdict is tested on tables whose answer is known.
A difference is claimed only where two 95% intervals do not overlap (bnviz.stats.separated).
A summary is any pandas frame of that shape; this package itself imports no pandas.

The parts: `core` (Comparison, Reading, an arm's row and estimate), `chapter` (the book
chapter's questions and one run's status line), `why` ("Why does BN help?": the loss
landscape, internal covariate shift, weight decay, training only gamma and beta) and
`variants` (fine-tuning, Lite BN, BN before or after the activation). Callers use the names
below: `readings.ablation(summary)`.
Names and metric phrases (`name_a`, `what`) are English data, marked with N_ where they are
written (a Phrase where a number is part of them); the functions that render sentences
(`Comparison.text`, the *_text functions, `one_run`) translate their templates and those phrases
at render time (bnviz.i18n), so the English output is unchanged.
"""
from bnviz.readings.chapter import (NORM_BATCH_METRICS, LrLimit, ablation, batch1, bias,
                                    devices, fluctuation, gamma, lr, lr_text, norm_batch,
                                    one_run, presets, sgd_batch)
from bnviz.readings.core import (Comparison, Reading, UnknownArm, at_chance, compare,
                                 estimate, row_of)
from bnviz.readings.variants import FINETUNE_NAMES, finetune, finetune_text, lite, placement
from bnviz.readings.why import (BN_LAYERS, ICS_NAMES, INPUT_SHIFT, LANDSCAPE_ACTS,
                                LANDSCAPE_METRICS, ics, ics_text, landscape, landscape_text,
                                train_only, train_only_text, weight_decay, weight_decay_text)

__all__ = ["BN_LAYERS", "Comparison", "FINETUNE_NAMES", "ICS_NAMES", "INPUT_SHIFT",
           "LANDSCAPE_ACTS", "LANDSCAPE_METRICS", "LrLimit", "NORM_BATCH_METRICS", "Reading",
           "UnknownArm", "ablation", "at_chance", "batch1", "bias", "compare", "devices",
           "estimate", "finetune", "finetune_text", "fluctuation", "gamma", "ics", "ics_text",
           "landscape", "landscape_text", "lite", "lr", "lr_text", "norm_batch", "one_run",
           "placement", "presets", "row_of", "sgd_batch", "train_only", "train_only_text",
           "weight_decay", "weight_decay_text"]
