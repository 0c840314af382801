"""mmengine hooks of fastsnn-mm (registered in the root HOOKS registry)."""
from .alpha_calibration_hook import QuantAlphaCalibrationHook

__all__ = ['QuantAlphaCalibrationHook']
