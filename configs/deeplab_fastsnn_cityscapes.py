# DeepLabV3 Fast-SNN (QResNet-34, output stride 8, ASPPHead, 3-bit) on
# Cityscapes (19 classes) with mmseg's stock data settings (512x1024
# crops) and 80k-iteration schedule. Needs *_labelTrainIds.png masks (mmseg's
# tools/dataset_converters/cityscapes.py makes them).
# Step 2 of its progressive chain (deeplab_fastsnn_cityscapes_fp32.py from
# ImageNet ResNet-34 -> _4bit.py -> this config -> _2bit.py):
#   python tools/train.py configs/deeplab_fastsnn_cityscapes.py
_base_ = [
    './_base_/models/deeplab_fastsnn_r34.py',
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
default_scope = 'mmseg'

data_layout = ('Cityscapes layout {root}/{{leftImg8bit,gtFine}}/'
               '{{train,val}}/<city>/, gtFine with *_labelTrainIds.png')
crop_size = (512, 1024)
model = dict(data_preprocessor=dict(size=crop_size),
             decode_head=dict(num_classes=19))
optim_wrapper = dict(
    # clips are thresholds, not weights: no decay pulling them to zero
    paramwise_cfg=dict(custom_keys={'alpha': dict(decay_mult=0.0)}))
load_from = 'work_dirs/deeplab_fastsnn_cityscapes_4bit/iter_80000.pth'
# random states go into each checkpoint, so --resume repeats an unbroken run
custom_hooks = [dict(type='RandomStateHook')]
