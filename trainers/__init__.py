"""The lipnorm application: flags, per-dataset presets, dispatch (`lipnorm` and main.py call trainers.cli).

Importing it sets the application's TensorFlow environment, so it must come before TensorFlow
loads (a value the user set wins):
- TF_ENABLE_ONEDNN_OPTS=1: TF leaves its oneDNN CPU kernels off on x86 CPUs without AVX-512.
  On this project's 2-core AVX2 machine they made a 3x3 convolution's input gradient 5x and its
  forward pass 1.5x faster, and a TENT step 1.8-2.1x faster (README, "Measured numbers").
  (TF turns them on by itself where AVX-512 is present.) Which kernels MultiWorkerMirroredStrategy
  workers' graphs run on differed by CPU (measured: Eigen on the AVX2 machine, oneDNN on an AVX-512 one).
- TF_CPP_MIN_LOG_LEVEL=2: no C++ info lines on the console.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
