"""One check of the arguments that say how an SNN runs: T (``timesteps``),
the neuron rule, the mode and ``time_chunk``.

Every entry point calls :func:`check_snn_arguments`: the converter, the
runner, the task wrappers (a config's ``snn=dict(...)``) and
``tools/test.py``. They differ only in how their user writes the
arguments, which :class:`Spelling` carries, so each error names what the
user typed (``timesteps``, ``model.snn.timesteps``, ``--timesteps``). Every
error is a :class:`~fastsnn_mm.errors.BadArgumentError` (a ``ValueError``).
"""
from dataclasses import dataclass

from ..errors import BadArgumentError, check_choice, check_int
from .rules import NEURON_RULES

MODES = ('folded', 'streaming')


@dataclass(frozen=True)
class Spelling:
    """How one kind of caller writes the arguments.

    name: the format of an argument's name (``{}`` is the Python name).
    setting: an argument set to a value, in a sentence.
    default: how T is left to its default.
    dashes: names use ``-`` for ``_`` (command-line options).
    parsed: values arrive parsed as integers (argparse ``type=int``), so
        a bad one can only be out of range: the error says just the range.
    """
    name: str = '{}'
    setting: str = '{value} {name}'
    default: str = 'None gives'
    dashes: bool = False
    parsed: bool = False

    def __call__(self, arg: str) -> str:
        return self.name.format(arg.replace('_', '-') if self.dashes
                                else arg)

    def set_to(self, arg: str, value) -> str:
        return self.setting.format(name=self(arg), value=value)


#: keyword arguments of Python calls (convert_to_snn, run_timesteps, ...)
PYTHON = Spelling()
#: a config's ``model.snn=dict(...)``
CONFIG = Spelling(name='model.snn.{}', setting='{name}={value!r}',
                  default='leave it out for')
#: ``tools/test.py``'s options
COMMAND_LINE = Spelling(name='--{}', setting='{name} {value}',
                        default='leave it out for', dashes=True, parsed=True)


def check_snn_arguments(timesteps, neuron=None, mode='folded',
                        time_chunk=None, *, spelling: Spelling = PYTHON,
                        timesteps_default: bool = True):
    """Refuse bad run arguments before any copying, surgery or pass.

    Args:
        timesteps: T, an integer >= 1; None stands for the default (2^b - 1
            of the QuantReLUs) unless ``timesteps_default`` is False.
        neuron: a registered neuron rule's name (:data:`rules.NEURON_RULES`:
            'signed', 'unsigned', ...); None where the caller takes none.
        mode: 'folded' or 'streaming'.
        time_chunk: None, or an integer >= 1 in folded mode only.
        spelling: how the caller's user writes these (:class:`Spelling`).
    """
    if timesteps is not None or not timesteps_default:
        _check_count(spelling, 'timesteps', timesteps,
                     f'T; {spelling.default} 2^bits - 1 of the QuantReLUs')
    if neuron is not None:
        check_choice(spelling('neuron'), neuron, sorted(NEURON_RULES))
    check_choice(spelling('mode'), mode, MODES)
    if time_chunk is None:
        return
    _check_count(spelling, 'time_chunk', time_chunk,
                 'steps per pass in folded mode')
    if mode != 'folded':
        chunk = spelling('time_chunk')
        folded = spelling.set_to('mode', 'folded')
        raise BadArgumentError(
            f'{chunk} applies to {folded} only, got '
            f'{spelling.set_to("mode", mode)}: drop {chunk} (streaming '
            f'presents one step per pass), or use {folded}')


def _check_count(spelling, arg, value, hint):
    name = spelling(arg)
    if spelling.parsed and isinstance(value, int) and value < 1:
        raise BadArgumentError(f'{name} must be >= 1, got {value} ({hint})')
    check_int(name, value, 1, hint=hint)
