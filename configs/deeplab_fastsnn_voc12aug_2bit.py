# Step 3 of the progressive chain (fp32 -> 4 -> 3 -> 2 bits): 2-bit
# activations (T = 3), initialised from the 3-bit QANN (load_from); its
# alphas carry over. Fine-tuning, so a 10x smaller learning rate than
# training from scratch.
_base_ = './deeplab_fastsnn_voc12aug.py'

# quant.bits re-bits every QuantReLU, those built from act_cfg too
model = dict(quant=dict(bits=2))
optim_wrapper = dict(optimizer=dict(lr=0.001))
load_from = 'work_dirs/deeplab_fastsnn_voc12aug/iter_20000.pth'
