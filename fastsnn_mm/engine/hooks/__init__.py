"""mmengine hooks of fastsnn-mm (registered in the root HOOKS registry)."""
from .alpha_calibration_hook import QuantAlphaCalibrationHook
from .conversion_hook import FastSNNConversionHook
from .random_state_hook import RandomStateHook

__all__ = ['QuantAlphaCalibrationHook', 'FastSNNConversionHook',
           'RandomStateHook']
