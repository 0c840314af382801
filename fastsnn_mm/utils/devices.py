"""Where a kernel launch runs: on its tensor's own GPU.

Triton (like any CUDA launch from Python) launches on the *current* CUDA
device, which is ``cuda:0`` unless someone changed it. A model on
``cuda:1`` in a process whose current device is 0 would then launch on the
wrong GPU and read memory it cannot address. DDP with one process per GPU
hides this (each process sets its own current device); ``model.to('cuda:1')``
in one process does not.

Torch only here, so the quantization and spiking cores can both use it.
"""
import contextlib

import torch


def on_device_of(tensor: torch.Tensor):
    """A context in which kernel launches go to ``tensor``'s GPU; nothing
    for a CPU tensor (Triton's interpreter runs kernels on CPU tensors)."""
    if tensor.is_cuda:
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()
