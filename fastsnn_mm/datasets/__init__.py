"""Synthetic VOC-style data and a data-root check for configs.

Light on purpose (numpy, cv2, PIL): ``import fastsnn_mm`` imports it.
"""
from .check import check_data_files, check_data_root
from .synthetic_voc import (
    generate_synthetic_voc,
    render_image,
    synthetic_metainfo,
)

__all__ = [
    'check_data_files', 'check_data_root', 'generate_synthetic_voc',
    'render_image',
    'synthetic_metainfo'
]
