"""Collect the QANN/SNN result tables of several runs into one table + plot.

    python tools/analysis_tools/summarize_results.py work_dirs/demo \
        --out work_dirs/demo/summary

Reads every ``<run>/results.json`` written by ``tools/test.py --out-json``.
"""
import argparse
import glob
import json
import os.path as osp
import sys

# the headline metric of each task, as the stock evaluators name it
HEADLINE = ('accuracy/top1', 'pascal_voc/mAP', 'mIoU')


def headline(row):
    for key in HEADLINE:
        if key in row:
            return key, float(row[key])
    raise KeyError(f'no known metric in {sorted(row)}')


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('root', help='folder whose sub-folders hold results.json')
    p.add_argument('--out', required=True, help='output path without suffix')
    args = p.parse_args()
    files = sorted(glob.glob(osp.join(args.root, '*', 'results.json')))
    if not files:
        print(f'error: no */results.json under {args.root}', file=sys.stderr)
        sys.exit(2)
    rows = []
    for f in files:
        run = osp.basename(osp.dirname(f))
        for r in json.load(open(f)):
            metric, value = headline(r)
            rows.append(dict(run=run, model=r['model'], neuron=r['neuron'],
                             T=r['T'], metric=metric, value=value))
    lines = ['| run | model | neuron | T | metric | value |',
             '|---|---|---|---|---|---|']
    lines += [f"| {r['run']} | {r['model']} | {r['neuron']} | {r['T']} | "
              f"{r['metric']} | {r['value']:.4f} |" for r in rows]
    text = '\n'.join(lines)
    print(text)
    with open(args.out + '.md', 'w') as f:
        f.write(text + '\n')
    plot(rows, args.out + '.png')
    print(f'wrote {args.out}.md and {args.out}.png')


def plot(rows, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    runs = list(dict.fromkeys(r['run'] for r in rows))
    fig = Figure(figsize=(2.6 * len(runs) + 1, 3.2))
    FigureCanvasAgg(fig)
    for i, run in enumerate(runs):
        ax = fig.add_subplot(1, len(runs), i + 1)
        sel = [r for r in rows if r['run'] == run]
        labels = [r['model'] if r['model'] == 'QANN'
                  else f"{r['neuron']}\nT={r['T']}" for r in sel]
        vals = [r['value'] for r in sel]
        colors = ['#777', '#1f77b4', '#ff7f0e'][:len(sel)]
        bars = ax.bar(labels, vals, color=colors)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v, f'{v:.3g}',
                    ha='center', va='bottom', fontsize=8)
        ax.set_title(f"{run}: {sel[0]['metric']}", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == '__main__':
    main()
