"""Shared test settings.

One torch thread: the models here are tiny, so a second thread buys little, and on a busy
machine oversubscribed OpenMP threads make small ops many times slower.
"""

import torch

torch.set_num_threads(1)
