"""The benchmark scripts' record (RESULTS.md) and the GPU run's script,
exercised on the CPU with tiny sizes (no timings are asserted)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))
import results  # noqa: E402


def fake_env(kind, device):
    return dict(kind=kind, device=device, torch='2.x', python='3.x',
                date='2026-12-01 00:00 UTC')


def test_record_keeps_cpu_rows_beside_gpu_rows(tmp_path):
    md = str(tmp_path / 'RESULTS.md')
    cpu = fake_env('cpu', 'Some CPU, 2 torch threads')
    results.record('qat_step', cpu, 'resnet18, 32 px', ['model', 'ms'],
                   [['fp32', 1.5], ['qat', 1.7]], md_path=md)
    text = open(md).read()
    assert '## QAT train step against the ReLU step' in text
    assert '| fp32 | 1.5 |' in text and results.PENDING in text
    gpu = dict(fake_env('cuda', 'NVIDIA H200'), cuda='13.0')
    results.record('qat_step', gpu, 'resnet18, 32 px', ['model', 'ms'],
                   [['fp32', 0.5]], md_path=md)
    # the same benchmark, device and setting again: replaced, not added
    results.record('qat_step', cpu, 'resnet18, 32 px', ['model', 'ms'],
                   [['fp32', 1.4]], md_path=md)
    text = open(md).read()
    qat = text.split('## QAT train step')[1]
    assert '| fp32 | 1.4 |' in qat and '| 0.5 |' in qat
    assert '| 1.5 |' not in qat and results.PENDING not in qat
    assert qat.index('Some CPU') < qat.index('NVIDIA H200')  # CPU first
    assert 'cuda 13.0' in qat
    # every other section still says its GPU rows are pending
    assert text.count(results.PENDING) == len(results.SECTIONS) - 1
    data = json.load(open(tmp_path / 'results.json'))
    assert len(data['runs']) == 2
    assert sorted(os.listdir(tmp_path)) == ['RESULTS.md', 'results.json']
    for line in text.splitlines():  # well-formed tables
        if line.startswith('|'):
            assert line.endswith('|')


def test_record_refuses_bad_rows_and_bad_files(tmp_path):
    md = str(tmp_path / 'RESULTS.md')
    env = fake_env('cpu', 'cpu')
    with pytest.raises(ValueError, match='2 cells for 3 columns'):
        results.record('qat_step', env, 's', ['a', 'b', 'c'], [[1, 2]],
                       md_path=md)
    with pytest.raises(ValueError, match='unknown benchmark'):
        results.record('nope', env, 's', ['a'], [[1]], md_path=md)
    assert not os.listdir(tmp_path)  # nothing half-written
    (tmp_path / 'results.json').write_text('{"runs": [')
    with pytest.raises(SystemExit, match='not a benchmark record'):
        results.record('qat_step', env, 's', ['a'], [[1]], md_path=md)
    assert (tmp_path / 'results.json').read_text() == '{"runs": ['


def test_bench_neuron_cpu_tiny(tmp_path, one_thread):
    import bench_neuron
    md = str(tmp_path / 'RESULTS.md')
    out = bench_neuron.main(['--device', 'cpu', '--timesteps', '3', '5',
                             '--shape', '2', '3', '4', '4', '--repeats', '2',
                             '--warmup', '1', '--no-compile',
                             '--no-spikingjelly', '--results', md])
    for T in (3, 5):
        verdicts = {k: v[3] for k, v in out[T].items()}
        assert verdicts['ours, signed'] == 'yes'
        assert verdicts['ours, unsigned'] == 'yes'
        assert verdicts['official-code style loop, signed'] == 'yes'
        assert all(v[0] > 0 for v in out[T].values())
    text = open(md).read()
    section = text.split('## Neuron update alone')[1].split('\n## ')[0]
    assert '| variant | T=3 (ms) | T=5 (ms) | spikes = reference loop |' \
        in section
    assert '| ours, signed |' in section and results.PENDING in section
    assert os.path.getsize(tmp_path / 'neuron_cpu.png') > 1000
    assert '(neuron_cpu.png)' in section


def test_bench_snn_plans_cpu_tiny(tmp_path, one_thread):
    """The GPU run's plan table (default plan, all T folded, streaming)
    on the CPU with --plans."""
    import bench_snn
    md = tmp_path / 'RESULTS.md'
    bench_snn.main(['--plans', '--device', 'cpu', '--width', '8', '--size',
                    '16', '--batch', '4', '--timesteps', '3', '--repeats',
                    '2', '--results', str(md), '--plot',
                    str(tmp_path / 'plans.png')])
    text = md.read_text()
    section = text.split('## SNN against T QANN passes: time')[1]
    section = section.split('\n## ')[0]
    assert 'width 8, 3-bit, 16 px, batch 4, plans' in section
    for plan in ('default plan', 'all T folded', 'streaming'):
        assert f'| 3 | {plan} |' in section
    assert '(plans.png)' in section and (tmp_path / 'plans.png').exists()


def run_gpu_script(out_dir, *args):
    env = dict(os.environ, OUT=str(out_dir), PYTHON=sys.executable,
               FASTSNN_GPU_WHEELS=str(out_dir / 'no-wheels'),
               FASTSNN_CORE_ONLY='1', OMP_NUM_THREADS='1')
    return subprocess.run(['bash', 'benchmarks/run_gpu.sh', *args], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=600)


def test_run_gpu_script_dry_run_on_cpu(tmp_path):
    """benchmarks/run_gpu.sh --device cpu: the GPU run's steps with tiny
    sizes, results in $OUT; FASTSNN_CORE_ONLY=1 imports fastsnn_mm as a
    machine without mmcv/mmdet/mmseg/mmpretrain must."""
    out_dir = tmp_path / 'out'
    run = run_gpu_script(out_dir, '--device', 'cpu',
                         '--steps', 'neuron,qat32')
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert 'FAILED' not in log and 'fastsnn_mm import: core' in log
    for step in ('bench_neuron', 'bench_qat_step 32 px'):
        assert f's  {step}' in log, step
    assert 'bench_snn' not in log  # not asked for
    text = (out_dir / 'RESULTS.md').read_text()
    data = json.loads((out_dir / 'results.json').read_text())
    assert {'neuron', 'qat_step'} <= {r['bench'] for r in data['runs']}
    assert '| qat 3-bit, bf16 autocast |' in text
    assert 'summary' in (out_dir / 'run_gpu.log').read_text()
    assert not any(p.name.startswith('.tmp-') for p in out_dir.iterdir())
    assert len(list(out_dir.iterdir())) <= 8  # what a GPU run may bring back
    bad = run_gpu_script(tmp_path / 'bad', '--device', 'cpu', '--steps',
                         'neuron,nope')
    assert bad.returncode == 2 and 'unknown step nope' in bad.stderr


def test_run_gpu_script_says_how_to_get_missing_wheels(tmp_path):
    """A Python without mmengine and no wheels: stopped before any step,
    with the command that makes the wheels."""
    bare = tmp_path / 'python'
    # the interpreter without site-packages: nothing of the venv imports
    bare.write_text(f'#!/bin/sh\nexec {sys._base_executable} -S "$@"\n')
    bare.chmod(0o755)
    env = dict(os.environ, OUT=str(tmp_path / 'out'), PYTHON=str(bare),
               FASTSNN_GPU_WHEELS=str(tmp_path / 'no-wheels'))
    run = subprocess.run(['bash', 'benchmarks/run_gpu.sh', '--device', 'cpu'],
                         cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert 'mmengine' in run.stdout and 'make gpu-wheels' in run.stdout
    assert 'step:' not in run.stdout


def test_parallel_pytest_splits_tests_and_reports_failures(tmp_path,
                                                            capsys):
    import parallel_pytest
    assert parallel_pytest.split(list('abcdefg'), 3) == [
        list('abc'), list('de'), list('fg')]
    assert parallel_pytest.split(['a'], 4) == [['a']]
    (tmp_path / 'test_ok.py').write_text(
        'def test_a():\n    pass\n\n\ndef test_b():\n    pass\n')
    (tmp_path / 'test_none.py').write_text(
        'import pytest\n\n\n@pytest.mark.cuda\ndef test_c():\n    pass\n')
    (tmp_path / 'test_bad.py').write_text('def test_d():\n    assert 0\n')
    (tmp_path / 'test_broken.py').write_text('import no_such_module\n')
    opts = ['-q', '-p', 'no:cacheprovider', '-m', 'not cuda', '--rootdir',
            str(tmp_path)]
    files = [str(tmp_path / f'test_{n}.py') for n in ('ok', 'none')]
    assert parallel_pytest.main(opts + ['--'] + files) == 0
    assert '2 tests in' in capsys.readouterr().out
    assert parallel_pytest.main(
        opts + ['--', str(tmp_path / 'test_bad.py')]) == 1
    assert parallel_pytest.main(
        opts + ['--'] + files + [str(tmp_path / 'test_broken.py')]) == 1
    assert 'no_such_module' in capsys.readouterr().out


def fake_run(bench, columns, rows, setting='s', kind='cuda',
             date='2026-12-02 10:05 UTC'):
    return dict(bench=bench, env=dict(kind=kind, date=date, device='d'),
                setting=setting, columns=columns, rows=rows, notes=[])


def test_targets_table_judges_this_calls_rows():
    import targets
    data = {'runs': [
        fake_run('snn_time', ['T', 'plan', 'SNN / (T x QANN), median'],
                 [['3', 'default plan', '0.80'], ['15', 'default plan',
                                                  '1.20'],
                  ['3', 'streaming', '3.0']]),
        fake_run('snn_memory', ['case', 'working (MiB)', 'working / QANN'],
                 [['QANN', '10', '1.00'], ['default plan', '14', '1.40']]),
        fake_run('qat_step', ['model', '/ ReLU (fp32) step'],
                 [['fp32', '1.000'], ['qat 3-bit', '1.100'],
                  ['qat 3-bit, torch path', '1.9']]),
        fake_run('snn_peer', ['T', 'SpikingJelly / ours, median',
                              'outputs equal'],
                 [['3', '1.50', 'yes (bit-identical)']]),
        # an older run and a CPU run: not this call's
        fake_run('neuron', ['variant', 'T=3 (ms)'], [['ours, signed', '9']],
                 date='2026-12-01 00:00 UTC'),
        fake_run('snn_time', ['T', 'plan', 'SNN / (T x QANN), median'],
                 [['3', 'default plan', '9.0']], kind='cpu'),
    ]}
    lines = targets.judge(data, '2026-12-02 10:00 UTC', 'cuda')
    met = {(line[0], line[2]): line[-1] for line in lines}
    assert met[('SNN time / (T x QANN)', 'T=3, default plan')] is True
    assert met[('SNN time / (T x QANN)', 'T=15, default plan')] is False
    assert met[('SNN peak memory / QANN', 'default plan / QANN')] is True
    assert met[('QAT step / ReLU step', 'qat 3-bit')] is True
    assert met[('network vs SpikingJelly', 'T=3, outputs')] is True
    assert met[('neuron update vs SpikingJelly', '-')] is None
    assert len([k for k in met if k[0].startswith('SNN time')]) == 2
    text = targets.render(lines)
    assert '5 met, 1 missed, 1 not measured' in text


@pytest.mark.skipif(importlib.util.find_spec('spikingjelly') is None,
                    reason='SpikingJelly is a benchmark-only extra')
def test_spikingjelly_runs_our_converted_network_to_the_same_bits(
        one_thread):
    """The peer network of ``bench_snn.py --peer spikingjelly``: our
    weights and thresholds in SpikingJelly's multi-step IF nodes and
    containers give our unsigned SNN's output bit for bit."""
    import peer_spikingjelly as peer
    from bench_net import build
    from float_order import dyadic_input, make_dyadic

    from fastsnn_mm import convert_to_snn

    # dyadic: SpikingJelly runs the layers before the first neuron on T x B
    # repeated images, ours once on B; the sums are exact in any order
    net = make_dyadic(build(8, 3))
    for i, m in enumerate(m for m in net.modules() if hasattr(m, 'alpha')):
        m.alpha.data.fill_(0.5 + i / 16)  # a threshold per layer
    x = dyadic_input((2, 3, 16, 16))
    with torch.no_grad():
        for T in (1, 4):
            ours = convert_to_snn(net, timesteps=T, neuron='unsigned')
            sj = peer.spikingjelly_network(ours.module)
            nodes = [m for m in sj.modules()
                     if isinstance(m, peer.ScaledIFNode)]
            assert len(nodes) == len(
                [m for m in net.modules() if hasattr(m, 'alpha')])
            out = peer.run_spikingjelly(sj, x, T)
            # dyadic: exact in any float order (torch.equal inside)
            assert peer.agreement(out, ours(x)) == 'yes (bit-identical)'
            # a second batch starts from a fresh state; the same run: the
            # same bits
            assert torch.equal(peer.run_spikingjelly(sj, x, T), out)
        signed = convert_to_snn(net, timesteps=3)
        with pytest.raises(SystemExit, match='unsigned'):
            peer.spikingjelly_network(signed.module)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_bench_neuron_cuda_tiny(tmp_path):
    import bench_neuron
    out = bench_neuron.main(['--device', 'cuda', '--timesteps', '3',
                             '--shape', '2', '8', '8', '8', '--repeats', '2',
                             '--warmup', '1', '--no-compile',
                             '--no-spikingjelly', '--results',
                             str(tmp_path / 'RESULTS.md')])
    assert out[3]['ours, signed'][3] == 'yes'
    assert out[3]['ours, unsigned'][3] == 'yes'
