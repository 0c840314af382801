"""How a converted SNN behaves layer by layer: firing rates, spike counts
against the QANN levels, synaptic operations, energy, plots and reports."""
from .energy import E_AC_PJ, E_MAC_PJ, layer_macs, synops_table
from .layer_stats import (
    cancelling_pairs,
    collect_layer_stats,
    default_timesteps,
    path_of,
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
    'plot_synops', 'plot_energy', 'md_table', 'write_report'
]
