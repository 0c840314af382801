"""Facts about the mm task packages, on the ground floor.

``fastsnn_mm.models`` registers stand-ins for wrappers whose package is
missing, and ``fastsnn_mm.utils.launch`` refuses a config whose package is
missing; both read these tables here, so neither has to import the other.
Only the standard library: this module imports nothing of the package.
"""

#: task wrapper type -> the mm task package it lives in
TASK_WRAPPERS = {'FastSNNImageClassifier': 'mmpretrain',
                 'FastSNNSingleStageDetector': 'mmdet',
                 'FastSNNEncoderDecoder': 'mmseg'}

#: mm package -> what to install for it (the versions tested here)
PIP_NAMES = {'mmdet': 'mmdet==3.3.0', 'mmseg': 'mmsegmentation==1.2.2',
             'mmpretrain': 'mmpretrain==1.2.0', 'mmcv': 'mmcv==2.1.0'}

