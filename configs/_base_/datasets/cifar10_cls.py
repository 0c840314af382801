# Real CIFAR-10 (python version) under data/cifar10/cifar-10-batches-py.
# Stock mmpretrain settings, except that nothing is downloaded: machines here
# are often offline, and a missing folder should fail fast and clearly.
_base_ = 'mmpretrain::_base_/datasets/cifar10_bs16.py'

data_layout = ('CIFAR-10 python batches in {root}/cifar-10-batches-py/ '
               '(extract cifar-10-python.tar.gz into {root})')
train_dataloader = dict(dataset=dict(download=False))
val_dataloader = dict(dataset=dict(download=False))
test_dataloader = val_dataloader
