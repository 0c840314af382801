# Stage 1 of progressive training: 4-bit activations (T = 15), trained
# first; deeplab_fastsnn_voc12aug.py (3-bit) then starts from its checkpoint:
#   --cfg-options \
#   load_from=work_dirs/deeplab_fastsnn_voc12aug_4bit/iter_20000.pth
_base_ = './deeplab_fastsnn_voc12aug.py'

# quant.bits re-bits every QuantReLU, those built from act_cfg too
model = dict(quant=dict(bits=4))
