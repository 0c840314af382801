"""How a converted SNN behaves layer by layer: firing rates, spike counts
against the QANN levels, synaptic operations, energy, plots and reports;
and how far its metric is from the QANN's, with a paired bootstrap
interval over the test images."""
from .bootstrap import (
    DetectionRecords,
    Interval,
    SegmentationRecords,
    detection_records,
    miou,
    paired_interval,
    segmentation_records,
    top1,
    verdict,
    voc_map,
)
from .energy import E_AC_PJ, E_MAC_PJ, layer_macs, synops_table
from .layer_stats import (
    cancelling_pairs,
    collect_layer_stats,
    default_timesteps,
    path_of,
)
from .per_image import (
    MetricRecords,
    PerImageRecorder,
    PerImageRecordHook,
    records_of,
)
from .plots import (
    plot_energy,
    plot_firing_rates,
    plot_metric_vs_timesteps,
    plot_mismatch,
    plot_synops,
)
from .report import md_table, write_report

__all__ = [
    'cancelling_pairs', 'collect_layer_stats', 'default_timesteps',
    'path_of', 'layer_macs', 'synops_table', 'E_MAC_PJ', 'E_AC_PJ',
    'plot_metric_vs_timesteps', 'plot_firing_rates', 'plot_mismatch',
    'plot_synops', 'plot_energy', 'md_table', 'write_report',
    'paired_interval', 'verdict', 'Interval', 'top1', 'voc_map', 'miou',
    'DetectionRecords', 'SegmentationRecords', 'detection_records',
    'segmentation_records', 'MetricRecords', 'PerImageRecorder',
    'PerImageRecordHook', 'records_of'
]
