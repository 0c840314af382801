"""Spiking neurons, the timestep runner and the QANN -> SNN converter."""
from .converter import (
    SpikingNetwork,
    UnconvertibleModelError,
    check_convertible,
    convert_to_snn,
    find_unconvertible,
)
from .neurons import NEURONS, IFNeuron, SignedIFNeuron
from .run_state import neurons_of, timestep_context, timestep_run
from .runner import run_timesteps

__all__ = [
    'IFNeuron', 'SignedIFNeuron', 'NEURONS', 'convert_to_snn',
    'check_convertible', 'find_unconvertible', 'UnconvertibleModelError',
    'SpikingNetwork', 'run_timesteps', 'timestep_context', 'timestep_run',
    'neurons_of'
]
