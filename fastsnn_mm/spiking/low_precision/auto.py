"""``spike_dtype='auto'``: the fastest spike dtype that is safe here, said.

* ``'int8'`` where it is exact: the spike-reading layers' weights lie on an
  integer grid (the project's weight quantizers at <= 8 bits uniform, <= 5
  bits APoT) and the device runs int8 convolutions (oneDNN on the CPU);
* ``'bfloat16'`` where the device has a fast bfloat16 path and the user
  allowed rounding (``allow_rounding=True``: bfloat16 weights round to 8
  mantissa bits, outputs to bfloat16 before they come back to float32);
* float32 (None) otherwise.

One log line says what was picked and why. The weights are judged over
every conv / linear but the first (the first reads the image, not spikes,
and stays float32 whatever the dtype).
"""
from mmengine.logging import print_log
from torch import nn

from .fast_paths import slow_path_reason
from .int_grid import find_int_grid

AUTO = 'auto'


def _weighted_layers(model):
    layers = [m for m in model.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]
    return layers[1:]  # the first reads the image


def pick_spike_dtype(model: nn.Module, allow_rounding: bool = False):
    """(spike dtype or None, why): what ``'auto'`` means for ``model`` on
    its parameters' device."""
    layers = _weighted_layers(model)
    if not layers:
        return None, 'no conv or linear reads spikes'
    device = next(model.parameters()).device
    on_grid = sum(find_int_grid(m.weight) is not None for m in layers)
    int8_slow = slow_path_reason(device, 'int8')
    if on_grid == len(layers) and int8_slow is None:
        return 'int8', (f'all {on_grid} spike-reading layers have weights on '
                        f'an integer grid (exact integer arithmetic) and '
                        f'{device.type} runs int8 convolutions')
    why_not_int8 = (f'{on_grid} of {len(layers)} layers have weights on an '
                    'integer grid' if on_grid < len(layers) else int8_slow)
    bf16_slow = slow_path_reason(device, 'bfloat16')
    if allow_rounding and bf16_slow is None:
        return 'bfloat16', (f'int8 is not exact here ({why_not_int8}); '
                            f'{device.type} has a fast bfloat16 path and '
                            'allow_rounding=True')
    if not allow_rounding and bf16_slow is None:
        tail = ('bfloat16 would be faster here but rounds: pass '
                'allow_rounding=True to allow it')
    else:
        tail = f'bfloat16: {bf16_slow or "not allowed to round"}'
    return None, f'int8 is not exact here ({why_not_int8}); {tail}'


def resolve_spike_dtype(model, spike_dtype, allow_rounding=False):
    """``spike_dtype`` itself, or for ``'auto'`` the pick, logged once."""
    if spike_dtype != AUTO:
        return spike_dtype
    picked, why = pick_spike_dtype(model, allow_rounding)
    print_log(f"FastSNN: spike_dtype='auto' -> "
              f"{picked or 'float32'}: {why}", logger='current')
    return picked


__all__ = ['AUTO', 'pick_spike_dtype', 'resolve_spike_dtype']
