"""The spike dtypes a converted SNN may run its spike-reading layers in.

A layer that reads a neuron's output sees spike x theta with spikes -1, 0
or +1. With theta folded into its weights the input is exact in every dtype
below; only the weights (and, for bfloat16 / float16, the conv's output)
round. Membranes, counts and every other layer stay float32.

* ``'bfloat16'`` / ``'float16'``: the conv or linear runs in that dtype;
  its output comes back to float32 (bias added in float32) before the next
  neuron.
* ``'int8'``: where a layer's weights lie on an integer grid of at most
  127 steps each side (the project's weight quantizers at <= 8 bits
  uniform, <= 5 bits APoT), an int8 x int8 conv with int32 sums, one
  float32 rescale: exact integer arithmetic. Other layers stay float32,
  and the first batch's log line names them.
* ``'int8-rounded'``: as ``'int8'``, and layers whose weights lie on no
  such grid have them rounded to one (per output channel, 255 levels);
  the log line says how far the weights moved.
* ``None``: everything float32 (the default).
"""
import torch

from ...errors import check_choice

#: name -> the dtype the spike-reading layers compute in
SPIKE_DTYPES = {
    'bfloat16': torch.bfloat16,
    'float16': torch.float16,
    'int8': torch.int8,
    'int8-rounded': torch.int8,
}


#: every value a user may give: the dtypes, and 'auto' (the fastest exact
#: one here, :mod:`.auto`)
SPIKE_DTYPE_CHOICES = (*SPIKE_DTYPES, 'auto')


def check_spike_dtype(spike_dtype, name: str = 'spike_dtype'):
    """``spike_dtype`` if it is None, 'auto' or a key of
    :data:`SPIKE_DTYPES`, else one
    :class:`~fastsnn_mm.errors.BadArgumentError` naming the choices
    (``name``: how the caller's user wrote the argument)."""
    if spike_dtype is None:
        return None
    return check_choice(name, spike_dtype, list(SPIKE_DTYPE_CHOICES))


def rounds_weights(spike_dtype) -> bool:
    """Whether ``spike_dtype`` allows rounding weights onto an int8 grid."""
    return spike_dtype == 'int8-rounded'


def is_int8(spike_dtype) -> bool:
    return spike_dtype in ('int8', 'int8-rounded')
