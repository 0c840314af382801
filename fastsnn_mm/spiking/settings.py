"""How a converted SNN runs, in one frozen, validated object.

T, the neuron rule, the mode, the time chunk and the spike dtype are
checked once, where they enter (``convert_to_snn``'s arguments, a config's
``model.snn``, ``tools/test.py``'s options, an SNN checkpoint's metadata),
and then travel as one :class:`SNNSettings`: stored on the converted model
(``model.snn_cfg``), written into SNN checkpoints (``meta['snn']``) and
read back from them, so a fine-tuned SNN saved with ``spike_dtype='int8'``
and T = 5 reloads as it was saved.

It reads like the dict it replaces (``settings['timesteps']``,
``dict(settings)``), so code and checkpoints written against ``snn_cfg``
keep working.
"""
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

from mmengine.logging import print_log

from .low_precision.options import check_spike_dtype
from .validation import PYTHON, Spelling, check_snn_arguments


@dataclass(frozen=True, eq=False)
class SNNSettings(Mapping):
    """One run's settings; build with :meth:`checked`.

    Args:
        timesteps (int): T, the steps of a run.
        neuron (str): the neuron rule's name ('signed', 'unsigned', ...).
        mode (str): 'folded' or 'streaming'.
        time_chunk (int | None): folded mode: steps per call at most.
        spike_dtype (str | None): the dtype of the spike-reading layers.
    """
    timesteps: int
    neuron: str = 'signed'
    mode: str = 'folded'
    time_chunk: Optional[int] = None
    spike_dtype: Optional[str] = None

    @classmethod
    def checked(cls, timesteps, neuron='signed', mode='folded',
                time_chunk=None, spike_dtype=None, *,
                spelling: Spelling = PYTHON):
        """The settings, each refused in one line (worded as ``spelling``
        says the user wrote them) when bad; T must be known here."""
        check_snn_arguments(timesteps, neuron, mode, time_chunk,
                            spelling=spelling, timesteps_default=False)
        check_spike_dtype(spike_dtype, spelling('spike_dtype'))
        return cls(int(timesteps), neuron, mode, time_chunk, spike_dtype)

    @classmethod
    def from_saved(cls, saved: Mapping):
        """Settings from an SNN checkpoint's ``meta['snn']`` (older files
        lack ``spike_dtype``: float32)."""
        known = {f.name for f in fields(cls)}
        return cls.checked(**{k: v for k, v in saved.items() if k in known})

    def with_overrides(self, source: str = 'the command line', **given):
        """These settings with the values in ``given`` that are not None;
        each that differs from the saved one is logged once, naming both,
        so a run never silently changes a checkpoint's T or dtype."""
        changed = {k: v for k, v in given.items()
                   if v is not None and v != getattr(self, k)}
        for key, value in changed.items():
            print_log(f'SNN settings: {key}={value!r} from {source} instead '
                      f'of the checkpoint\'s {key}={getattr(self, key)!r}',
                      logger='current', level=30)
        if not changed:
            return self
        new = replace(self, **changed)
        return self.checked(**asdict(new))

    # -- the dict face --------------------------------------------------
    def __getitem__(self, key):
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    @classmethod
    def _names(cls):
        return tuple(f.name for f in fields(cls))

    def as_dict(self) -> dict:
        return asdict(self)

    def __eq__(self, other):
        # equal to the same settings as a dict too (an SNN checkpoint's
        # meta['snn'], code written against the old snn_cfg dict)
        if isinstance(other, Mapping):
            return dict(self) == dict(other)
        return NotImplemented

    def __hash__(self):
        return hash(tuple(self.values()))


__all__ = ['SNNSettings']
