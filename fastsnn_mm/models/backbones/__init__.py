"""Backbones that convert to SNNs as they are (no max-pool, QuantReLU)."""
from .qresnet import QBasicBlock, QResNet
from .qtiny_yolo import QTinyYOLO
from .qvgg import QVGG

__all__ = ['QResNet', 'QBasicBlock', 'QVGG', 'QTinyYOLO']
