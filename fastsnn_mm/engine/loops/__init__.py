from .layer_groups import assign_layer_groups
from .layerwise_finetune_loop import LayerwiseFinetuneLoop

__all__ = ['LayerwiseFinetuneLoop', 'assign_layer_groups']
