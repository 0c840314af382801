"""Backbones that convert to SNNs as they are (no max-pool, QuantReLU)."""
from .qresnet import QBasicBlock, QResNet
from .qvgg import QVGG

__all__ = ['QResNet', 'QBasicBlock', 'QVGG']
from .qtiny_yolo import QTinyYOLO  # noqa: E402
__all__.append('QTinyYOLO')
