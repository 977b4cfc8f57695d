"""Shared test settings.

Torch threads: 1 by default (the models here are tiny, so a second thread buys little, and on a
busy machine oversubscribed OpenMP threads make small ops many times slower).
``READPVLA_TEST_THREADS=2 make test`` runs the suite with 2 threads instead, to check that no test
depends on the thread count.
"""

import os

import torch

torch.set_num_threads(int(os.environ.get("READPVLA_TEST_THREADS", "1")))
