"""A model's ``quant=dict(...)`` config field, applied in one place.

Order matters: substitutes first (their ReLUs must exist for surgery to
quantize them), then surgery, then the split per call site (it routes the
QuantReLUs surgery made).
"""
from . import convertible
from .call_sites import check_flag, split_path_call_sites
from .surgery import quantize_model


def quantize_from_config(model, path, make_convertible=False,
                         per_call_site=True, **quant):
    """Make ``model`` the QANN its ``quant`` config asks for; in place.

    Args:
        model: the task model (its wrapper).
        path: the model's spiking path, traced to find call sites.
        make_convertible (bool): first replace max-pools and non-ReLU
            activations by their spiking-friendly substitutes, and route
            ReLU-like function calls on ``path`` to ReLU modules
            (:mod:`.convertible`). Off by default: without it the model is
            built exactly as before.
        per_call_site (bool): one QuantReLU per call site of an activation
            module the forward calls at several places (:mod:`.call_sites`).
            On by default, as the paper's networks have one clip per
            activation: a clip shared by a pre-add and a post-add
            activation fits neither. Models that call each activation
            module once (this package's backbones, mmcv ``ConvModule``
            necks and heads: every config here before the stock ones) have
            nothing to split and are built exactly as before (their outputs
            checked bit for bit); stock mm ResNets gain a QuantReLU per
            site, and their shared-form checkpoints still load, with the
            same outputs.
        **quant: the rest of the field (``bits``, ``skip``, ...), for
            :func:`quantize_model`.
    """
    if check_flag('make_convertible', make_convertible):
        convertible.make_convertible(model, quant.get('skip', ()), path)
    quantize_model(model, **quant)
    if check_flag('per_call_site', per_call_site):
        split_path_call_sites(model, path)
    return model
