# Step 3 of the Cityscapes chain: 2-bit activations (T = 3) from the 3-bit
# run, clips carried over, 10x smaller learning rate.
#   python tools/train.py configs/deeplab_fastsnn_cityscapes_2bit.py
_base_ = './deeplab_fastsnn_cityscapes.py'

model = dict(quant=dict(bits=2))
load_from = 'work_dirs/deeplab_fastsnn_cityscapes/iter_80000.pth'
optim_wrapper = dict(optimizer=dict(lr=0.001))
