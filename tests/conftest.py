"""Test-suite settings shared by every test file.

The tests run tiny models on a shared 2-core machine; one intra-op thread avoids
oversubscription, which made tiny forwards ~50x slower in practice.
"""

import torch

torch.set_num_threads(1)
