"""Error types for bad input, and the validators that raise them.

Every message names what is wrong and how to fix it. ``tools/train.py`` and
``tools/test.py`` print a :class:`FastSNNError` as one line on stderr (no
traceback) and exit non-zero; library callers catch them as the built-in
type each also is (``ValueError``, ``FileNotFoundError``, ...), so existing
``except ValueError`` code keeps working.

Only the standard library here: the quantization and spiking cores import
this module and must import with torch and mmengine alone.
"""
import numbers


class FastSNNError(Exception):
    """Base of the errors a user can fix by changing their input."""


class BadArgumentError(FastSNNError, ValueError):
    """An argument or config value has the wrong type or range."""


class BadInputError(FastSNNError, ValueError):
    """An input batch the network must not run on (NaN/Inf, channels)."""


class CheckpointError(FastSNNError, RuntimeError):
    """A checkpoint cannot be read, or does not fit the model."""


class MissingFileError(FastSNNError, FileNotFoundError):
    """A file or folder the run needs is not there."""


class DataError(FastSNNError, ValueError):
    """A data file exists but cannot be used (unparsable, unreadable)."""


class MissingPackageError(FastSNNError, ImportError):
    """A config needs an mm task package that is not installed."""


class UnconvertibleModelError(FastSNNError, TypeError):
    """The model holds modules with no spiking equivalent. Here, not in the
    converter, because quantization's ``make_convertible`` refuses the same
    way before QAT, and it sits below the converter."""


def check_int(name: str, value, low: int, high: int = None,
              hint: str = '') -> int:
    """``value`` if it is an int in [low, high], else one clear error.

    Strings, floats and bools are refused even when they look like a
    number (``'3'``, ``2.5``, ``True``): a config value of the wrong type is
    a typo worth pointing at, not something to guess around.
    """
    span = f'>= {low}' if high is None else f'in {low}..{high}'
    hint = f' ({hint})' if hint else ''
    if isinstance(value, str):
        fix = (f'; write {name}={value.strip()} without quotes'
               if value.strip().lstrip('-').isdigit() else '')
        raise BadArgumentError(f'{name} must be an integer {span}{hint}, got '
                               f'the string {value!r}{fix}')
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadArgumentError(f'{name} must be an integer {span}{hint}, got '
                               f'{value!r} ({type(value).__name__})')
    if value < low or (high is not None and value > high):
        raise BadArgumentError(
            f'{name} must be an integer {span}{hint}, got {value}')
    return int(value)


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise BadArgumentError(
            f'{name} must be one of {", ".join(map(repr, choices))}, '
            f'got {value!r}')
    return value
