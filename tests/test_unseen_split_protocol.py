"""The unseen-split protocol script: its steps come in an order that
respects what each needs, every tuning run reports on the test split, and
the table judges each run against the issue's bar."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import protocol_report as report  # noqa: E402
import unseen_split_protocol as protocol  # noqa: E402


def test_steps_wait_for_what_they_need():
    steps = protocol.plan('/w', ['cls', 'det', 'seg'], [2, 3], [0, 1],
                          other='/other')
    names = [s.name for s in steps]
    assert len(names) == len(set(names))
    for i, s in enumerate(steps):
        assert all(n in names[:i] for n in s.needs), s.name
    by = dict(zip(names, steps))
    # the segmentor's backbone and every 2-bit QANN start from a 3-bit one
    assert by['seg3_s1'].needs == ['cls3_s1']
    assert 'load_from=@cls3_s1' in by['seg3_s1'].argv
    assert 'load_from=@det3_s0' in by['det2_s0'].argv
    ft = by['ft_det2_s1'].argv
    assert "train_cfg.report_on='test'" in ft and \
        'train_cfg.report_stages=True' in ft
    assert 'train_cfg.timesteps=3' in ft and 'randomness.seed=1' in ft
    assert by['ft_seg3_s0'].argv[1].endswith('_2bit_layerwise.py')
    assert 'model.quant.bits=3' in by['ft_seg3_s0'].argv
    # the other family: the same checkpoints, only the test data swapped
    other = by['other_ft_cls3_s0']
    assert other.needs == ['ft_cls3_s0'] and '--snn' in other.argv
    assert 'test_dataloader.dataset.data_root=/other' in other.argv


def test_regimes_and_judges_are_runs_of_their_own():
    """Each regime tests its own SNN once; each judge tunes from the same
    QANN; the default run keeps its old names (a rerun resumes it); a
    larger test split replaces the test data of every report."""
    steps = protocol.plan('/w', ['det'], [2], [0], other='/other',
                          regimes=['signed', 'unsigned', 'short'],
                          judges=['train_slice', 'val_agreement'],
                          test_root='/big')
    by = {s.name: s for s in steps}
    assert len(by) == len(steps)
    assert {'eval_det2_s0', 'eval_det2_s0_unsigned', 'eval_det2_s0_short',
            'ft_det2_s0', 'ft_det2_s0_signed_val_agreement',
            'ft_det2_s0_unsigned_train_slice',
            'ft_det2_s0_short_val_agreement'} <= set(by)
    ev = by['eval_det2_s0_unsigned'].argv
    assert ev[ev.index('--neuron') + 1] == 'unsigned'
    assert ev[ev.index('--timesteps') + 1] == '3'
    assert 'test_dataloader.dataset.data_root=/big' in ev
    short = by['ft_det2_s0_short_val_agreement'].argv
    assert 'train_cfg.timesteps=2' in short and \
        "train_cfg.neuron='signed'" in short and \
        "train_cfg.judge_on='val_agreement'" in short
    assert 'test_dataloader.dataset.data_root=/big' in short
    assert by['ft_det2_s0_short_val_agreement'].needs == ['det2_s0']
    # the other family stays with the default run only
    assert [s.name for s in steps if s.name.startswith('other_')] == [
        'other_det2_s0', 'other_ft_det2_s0']


def test_judge_table_sets_judges_side_by_side():
    rows = []
    for judge, up in (('train_slice', [-0.6, -1.0, -0.2]),
                      ('val_agreement', [0.3, 0.1, 0.5])):
        r = dict(task='seg', metric='mIoU', bits=2, T=3, neuron='unsigned',
                 seed=0, judge=judge, tuned_vs_untuned=up,
                 tuned_vs_qann=[-2.0, -2.5, -1.5],
                 intervals={'SNN before': {'vs_qann': [-2.3, -2.8, -1.8]}})
        r['verdicts'] = report.verdicts(r)
        rows.append(r)
    text = report.judge_table(rows)
    first = text.splitlines()[2]
    assert first.startswith('| seg mIoU, 2-bit (T=3), unsigned, seed 0 | '
                            '-2.30 [-2.80, -1.80] |')
    assert '+0.30 [+0.10, +0.50]; -2.00 [-2.50, -1.50] (missed)' in first
    summary = {line.split(' | ')[0]: line for line in text.splitlines()
               if line.startswith('| train_slice') or
               line.startswith('| val_agreement')}
    # seg bar 0.5: -0.60 points is -1.2 bars
    assert summary['| train_slice'].endswith('| -0.60 | -2.00 | -1.20 | 1 |')
    assert summary['| val_agreement'].endswith(
        '| +0.30 | -2.00 | +0.60 | 0 |')
    assert report.judge_table(rows[:1]) == ''


def test_missing_test_root_is_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, 'tools/analysis_tools/unseen_split_protocol.py',
         '--test-root', str(tmp_path / 'nowhere'), '--work-dir',
         str(tmp_path / 'w')], cwd=REPO, capture_output=True, text=True,
        timeout=60)
    assert run.returncode == 1 and 'Traceback' not in run.stderr
    assert run.stderr.startswith(f'error: --test-root {tmp_path}/nowhere '
                                 'has no test split of its own')
    assert len(run.stderr.strip().splitlines()) == 1


def test_bad_jobs_is_one_line():
    run = subprocess.run(
        [sys.executable, 'tools/analysis_tools/unseen_split_protocol.py',
         '--jobs', '0'], cwd=REPO, capture_output=True, text=True,
        timeout=60)
    assert run.returncode == 1 and 'Traceback' not in run.stderr
    assert run.stderr.strip() == 'error: --jobs must be >= 1, got 0'


def _row(task, vs_untuned, vs_qann):
    return dict(task=task, tuned_vs_untuned=vs_untuned,
                tuned_vs_qann=vs_qann)


@pytest.mark.parametrize('task,vs_untuned,vs_qann,want', [
    # both intervals at or above -bar (points; cls bar 0.2)
    ('cls', [0.1, -0.1, 0.3], [-0.05, -0.2, 0.1], 'met'),
    # a model against itself: [0, 0] is inside any bar
    ('seg', [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 'met'),
    # the tuned SNN wholly below the QANN by more than the bar
    ('cls', [0.1, -0.1, 0.3], [-0.5, -0.7, -0.3], 'missed'),
    # ... or wholly below the untuned SNN (det bar 0.5)
    ('det', [-1.0, -1.6, -0.6], [0.2, -0.1, 0.5], 'missed'),
    # missed wins over undecided
    ('det', [-1.0, -1.6, -0.6], [-0.5, -0.9, 0.1], 'missed'),
    # an interval straddling -bar
    ('seg', [0.1, -0.2, 0.4], [-0.4, -0.9, 0.1], 'undecided'),
    # no interval (a run from before the intervals)
    ('cls', None, [0.0, -0.1, 0.1], 'undecided'),
])
def test_verdict_is_three_valued(task, vs_untuned, vs_qann, want):
    row = _row(task, vs_untuned, vs_qann)
    assert report.verdict(row) == want
    text = report.verdict_text(row)
    assert text.split(':')[0] == want
    if want == 'missed':
        assert 'by more than' in text and 'straddles' not in text


def test_verdict_bar_edge_is_met():
    """lo exactly at -bar: met (the bar is the largest drop accepted)."""
    assert report.verdict(_row('det', [0.0, -0.5, 0.5],
                                 [0.0, -0.5, 0.5])) == 'met'


def _reported_intervals(key, tuned, untuned, qann, scale=1.0):
    """The fine-tuning JSON's intervals of synthetic top-1 records, made by
    the loop's own code."""
    from fastsnn_mm.analysis.bootstrap import top1
    from fastsnn_mm.analysis.per_image import MetricRecords
    from fastsnn_mm.engine.loops.finetune_progress import FinetuneProgress
    from fastsnn_mm.engine.loops.finetune_report import keep_report
    progress = FinetuneProgress()
    for label, correct in (('qann', qann), ('before', untuned),
                           ('groups', tuned), ('task', tuned),
                           ('after', tuned)):
        keep_report(progress, label,
                    {key: MetricRecords(np.asarray(correct), top1)}, 0.0)
    return progress.reported_intervals


def test_table_and_plot_from_finished_runs(tmp_path):
    root = str(tmp_path)

    def put(step, name, data):
        os.makedirs(osp.join(root, step), exist_ok=True)
        with open(osp.join(root, step, name), 'w') as f:
            json.dump(data, f)
    key = 'pascal_voc/mAP'
    put('eval_det2_s0', 'results.json', [{key: 0.80}, {key: 0.78}])
    put('det2_s0', 'done.json', dict(seconds=300.0))
    iv = dict(diff=0.015, ci95=[-0.002, 0.03])
    put('ft_det2_s0', 'layerwise_finetune.json', dict(
        reported_on=dict(after={key: 0.795}),
        reported_stages=dict(groups={key: 0.79}, task={key: 0.795}),
        reported_intervals=dict(
            before={key: dict(images=200, snn_minus_qann=dict(
                diff=-0.02, ci95=[-0.04, -0.001]))},
            groups={key: dict(images=200, tuned_minus_untuned=dict(
                diff=0.01, ci95=[-0.004, 0.02]))},
            after={key: dict(images=200, tuned_minus_untuned=iv,
                             snn_minus_qann=dict(diff=-0.005,
                                                 ci95=[-0.02, 0.01]))}),
        interval_method=dict(level=0.95, resamples=1000, seed=0,
                             bootstrap_seconds=1.5, record_seconds=0.25,
                             qann_test_seconds=4.0),
        metric_before=0.70, metric_after=0.72, metric_qann=0.73,
        mean_mismatch_before=0.12, mean_mismatch_after=0.11,
        mean_inherited_before=0.11, stage_seconds=dict(groups=100.0,
                                                       task=20.0),
        groups=[dict(layer='neck.act', reverted=False),
                dict(layer='all layers (task loss)', reverted=False)]))
    rows = protocol.collect(root, ['det'], [2], [0])
    assert len(rows) == 1 and rows[0]['groups'] == 1
    r = rows[0]
    assert r['stages']['task'] == pytest.approx(79.5)
    # intervals in points, as the metrics
    assert r['tuned_vs_untuned'] == pytest.approx([1.5, -0.2, 3.0])
    assert r['tuned_vs_qann'] == pytest.approx([-0.5, -2.0, 1.0])
    assert r['intervals']['SNN before']['vs_qann'] == pytest.approx(
        [-2.0, -4.0, -0.1])
    # after - QANN straddles -0.5: undecided, though its point is at -0.5
    assert r['verdicts'] == dict(vs_untuned='met', vs_qann='undecided',
                                 run='undecided')
    text = report.table(rows)
    print(text)
    assert ('| 80.00 | 78.00 (-2.00 [-4.00, -0.10]) | 79.00 (+1.00 '
            '[-0.40, +2.00]) | - | 79.50 | +1.50 [-0.20, +3.00] | -0.50 '
            '[-2.00, +1.00] | undecided: interval against the QANN '
            'straddles -0.5 (bar 0.5) |') in text
    assert '| 70.00 -> 72.00 (73.00) |' in text  # points, as the test split
    assert '100 / - / 20; 300 |' in text
    assert '1000 resamples, seed 0' in text and '4.0 s testing the QANN' \
        in text
    json.dumps(rows)  # protocol.json carries the intervals as they are
    report.plot(rows, osp.join(root, 'p.png'))
    assert osp.getsize(osp.join(root, 'p.png')) > 0


def test_intervals_from_the_loops_own_code(tmp_path):
    """Synthetic per-image top-1 records through the loop's interval code
    and the protocol's reader: a model against itself gives [0, 0]; a
    tuned SNN wrong on every other image of 40 is missed."""
    key = 'accuracy/top1'
    rng = np.random.default_rng(0)
    untuned = rng.random(400) < 0.8
    same = _reported_intervals(key, untuned, untuned, untuned)
    for label in ('groups', 'task', 'after'):
        assert same[label][key]['images'] == 400
        for name in ('tuned_minus_untuned', 'snn_minus_qann'):
            assert same[label][key][name] == dict(diff=0.0, ci95=[0.0, 0.0])
    assert set(same['before'][key]) == {'images', 'snn_minus_qann'}
    worse = untuned.copy()
    worse[np.flatnonzero(worse)[::2]] = False  # loses ~40 points of top-1
    bad = _reported_intervals(key, worse, untuned, untuned)
    root = str(tmp_path)
    for name, rep in (('cls2_s0', same), ('cls2_s1', bad)):
        for step, data in (
                (f'eval_{name}', [{key: 80.0}, {key: 80.0}]),
                (f'ft_{name}', dict(
                    reported_on=dict(after={key: 80.0}),
                    reported_intervals=rep, metric_before=80.0,
                    metric_after=80.0, metric_qann=80.0,
                    mean_mismatch_before=0.1, mean_mismatch_after=0.1,
                    mean_inherited_before=0.1, groups=[]))):
            os.makedirs(osp.join(root, step), exist_ok=True)
            fname = 'results.json' if step.startswith('eval') else \
                'layerwise_finetune.json'
            with open(osp.join(root, step, fname), 'w') as f:
                json.dump(data, f)
    rows = protocol.collect(root, ['cls'], [2], [0, 1])
    assert [r['verdicts']['run'] for r in rows] == ['met', 'missed']
    assert rows[0]['tuned_vs_untuned'] == [0.0, 0.0, 0.0]
    lo, hi = rows[1]['tuned_vs_untuned'][1:]
    assert lo <= rows[1]['tuned_vs_untuned'][0] <= hi < -0.2
