"""Spikes written in the dtype the next layer reads, by the neuron itself.

A neuron's output is spike x theta in float32: what residual adds, pooling
and the readout need. A layer that runs on spikes in a low precision
(:mod:`.low_precision`) wants them in its own dtype instead: uint8 spike + 1
for oneDNN's int8 convolution, or +-theta rounded to bfloat16 / float16.
Made from the float32 output, that is two to three more passes over the
activation per layer (sign, cast, shift) and a float32 tensor read again.

:class:`SpikeCodes` names such a form by three code values, one per spike
+1, 0 and -1; the fused kernels (C on the CPU, Triton on CUDA) write them
beside the float32 output in the same pass over the membrane, in the same
memory layout. The neuron hangs them on its output tensor
(:func:`attach` / :func:`codes_of`), so a reader takes them only when its
input is that very tensor, unchanged since.
"""
import functools
import weakref
from dataclasses import dataclass
from typing import Optional

import torch

#: the kinds of code a reader may ask for
SHIFTED = 'shifted'  # uint8 spike + 1 (oneDNN's unsigned int8 input)
SIGN = 'sign'        # the spike itself, +-1 or 0, in ``dtype``
UNIT = 'unit'        # spike x u, u = theta rounded to ``dtype`` (normal)

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32}
_ATTR = '_fastsnn_spike_codes'
#: id(threshold tensor) -> (weak ref, version, form, bits)
_AT = {}


def unit_of(theta: float, dtype) -> Optional[float]:
    """theta rounded to ``dtype`` (u: a spike x theta cast to ``dtype`` is
    spike x u), or None when u is no normal number there (then a reader
    takes the spike's sign and folds all of theta into its weights)."""
    unit = float(torch.tensor(theta, dtype=dtype).float().item())
    info = torch.finfo(dtype)
    return unit if info.tiny <= unit <= info.max else None


@dataclass(frozen=True)
class SpikeCodes:
    """One form of spikes a reader takes: ``kind`` (SHIFTED, SIGN or UNIT)
    in ``dtype``."""
    kind: str
    dtype: torch.dtype

    def __post_init__(self):
        if self.kind not in (SHIFTED, SIGN, UNIT):
            raise ValueError(f'unknown spike code kind {self.kind!r}')
        if self.kind == SHIFTED and self.dtype != torch.uint8:
            raise ValueError('shifted spike codes are uint8')
        if self.dtype.itemsize not in _BITS:
            raise ValueError(f'no spike codes of {self.dtype.itemsize} bytes')

    def values(self, theta: float):
        """(code of spike +1, of 0, of -1) as numbers in ``dtype``."""
        if self.kind == SHIFTED:
            return 2, 1, 0
        unit = unit_of(theta, self.dtype) if self.kind == UNIT else None
        one = 1.0 if unit is None else unit
        return one, 0.0, -one

    def convert(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (spike x theta) in this form, made by torch ops: what a
        reader does when its neuron wrote no codes (the reference the
        kernels' codes are tested against). UNIT assumes theta has a
        normal value in ``dtype`` (:func:`unit_of`; else a reader asks
        for SIGN)."""
        if self.kind == UNIT:
            return x.to(self.dtype)
        spikes = torch.sign(x).to(self.dtype if self.kind == SIGN
                                  else torch.int8)
        return spikes if self.kind == SIGN else \
            spikes.add_(1).view(torch.uint8)

    def bits(self, theta: float):
        """The three codes as unsigned integers of ``dtype``'s width: what
        the kernels store."""
        return _bits(self, float(theta))

    def bits_at(self, theta: torch.Tensor):
        """:meth:`bits` at a threshold tensor, read from it once per value
        (a version of the tensor), not once per call: on CUDA reading it
        waits for the device."""
        held = _AT.get(id(theta))
        if held is None or held[0]() is not theta \
                or held[1] != theta._version or held[2] != self:
            if len(_AT) > 4096:
                _AT.clear()
            bits = self.bits(float(theta.reshape(-1)[0].item()))
            held = _AT[id(theta)] = (weakref.ref(theta), theta._version,
                                     self, bits)
        return held[3]


@functools.lru_cache(maxsize=4096)
def _bits(codes: SpikeCodes, theta: float):
    raw = torch.tensor(codes.values(theta), dtype=codes.dtype)
    raw = raw.view(_BITS[codes.dtype.itemsize])
    mask = (1 << (8 * codes.dtype.itemsize)) - 1
    return tuple(int(b) & mask for b in raw.tolist())


def attach(out: torch.Tensor, codes: SpikeCodes, values: torch.Tensor):
    """Hang ``values`` (codes of ``out``'s spikes, same shape and layout)
    on ``out``; returns ``out``."""
    setattr(out, _ATTR, (codes, values, out._version))
    return out


def codes_of(x: torch.Tensor, codes: SpikeCodes) -> Optional[torch.Tensor]:
    """The ``codes`` form of ``x``'s spikes when its neuron wrote them and
    nothing changed ``x`` since (an in-place op bumps its version); else
    None (the reader converts ``x`` itself)."""
    held = getattr(x, _ATTR, None)
    if held is None or held[0] != codes or held[2] != x._version:
        return None
    return held[1]


__all__ = ['SpikeCodes', 'SHIFTED', 'SIGN', 'UNIT', 'unit_of', 'attach',
           'codes_of']
