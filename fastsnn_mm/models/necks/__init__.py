"""Convertible necks (nearest upsampling, concat, QuantReLU ConvModules)."""
from .tiny_yolo_neck import TinyYOLONeck

__all__ = ['TinyYOLONeck']
