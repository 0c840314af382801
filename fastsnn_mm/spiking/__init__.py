"""Spiking neurons, the timestep runner and the QANN -> SNN converter."""
from .converter import (
    SpikingNetwork,
    UnconvertibleModelError,
    check_convertible,
    convert_to_snn,
    find_unconvertible,
)
from .neurons import NEURONS, IFNeuron, SignedIFNeuron
from .rules import NEURON_RULES, NeuronRule, register_rule
from .run_state import neurons_of, timestep_context, timestep_run
from .runner import run_timesteps

__all__ = [
    'IFNeuron', 'SignedIFNeuron', 'NEURONS', 'NEURON_RULES', 'NeuronRule',
    'register_rule', 'convert_to_snn',
    'check_convertible', 'find_unconvertible', 'UnconvertibleModelError',
    'SpikingNetwork', 'run_timesteps', 'timestep_context', 'timestep_run',
    'neurons_of'
]
