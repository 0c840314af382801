"""Bad input: one clear error naming the problem and the fix, nothing
half-written. One table row per bad input (README, "Bad inputs")."""
import logging
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, tiny_cls_config
from torch import nn

import fastsnn_mm  # noqa: F401  (registers modules)
from fastsnn_mm import QuantReLU, convert_to_snn, quantize_model
from fastsnn_mm.errors import (
    BadArgumentError,
    BadInputError,
    CheckpointError,
    DataError,
    FastSNNError,
    MissingFileError,
)
from fastsnn_mm.spiking import UnconvertibleModelError
from fastsnn_mm.utils import UnsafeCheckpointError
from fastsnn_mm.utils.checkpoint_check import (
    check_checkpoint_fits,
    read_state_dict,
)


def qnet(bits=3, pool=None):
    """conv-QuantReLU-conv-QuantReLU-pool-linear, clips at 1."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        pool or nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    quantize_model(net, bits=bits, alpha=1.0)
    return net.eval()


def _bad_pickle(path, marker):
    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))
    torch.save({'state_dict': {}, 'meta': Payload()}, path)


def _truncated(path, marker):
    torch.save(qnet().state_dict(), path)
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])


def _text_file(path, marker):
    open(path, 'w').write('epoch: 3\nloss: 0.12\n' * 20)


def _a_list(path, marker):
    torch.save([1, 2, 3], path)


def _full_precision(path, marker):
    torch.save({'state_dict': {k: v for k, v in qnet().state_dict().items()
                               if not k.endswith('alpha')}}, path)


def _other_architecture(path, marker):
    """Convs under other names, a classifier of another size."""
    state = {('backbone.' + k if k[0] in '0123' else k): v
             for k, v in qnet().state_dict().items()}
    state['6.weight'] = torch.zeros(3, 4)
    torch.save({'state_dict': state}, path)


# (bad checkpoint writer, error type, words the message must hold)
CHECKPOINTS = {
    'truncated': (_truncated, CheckpointError,
                  ['truncated', 'save or copy it again']),
    'not a checkpoint': (_text_file, CheckpointError,
                         ['not a torch checkpoint', "starts with b'epoch"]),
    'a list, not a dict': (_a_list, CheckpointError,
                           ['not a checkpoint', 'holds a list']),
    'code-running pickle': (_bad_pickle, UnsafeCheckpointError,
                            ['refusing', 'posix.system', 'trust']),
    'full precision for a test': (
        _full_precision, CheckpointError,
        ['full-precision', 'load_from=', 'QuantAlphaCalibrationHook']),
    'another architecture': (
        _other_architecture, CheckpointError,
        ['6 missing key(s): 0.bias, 0.weight, 1.alpha, 2.bias, 2.weight, '
         '3.alpha;', '6 unexpected key(s): backbone.0.bias, backbone.0.weight,'
         ' backbone.1.alpha, backbone.2.bias, backbone.2.weight, '
         'backbone.3.alpha;', '1 key(s) of another shape: 6.weight (3, 4) in '
         'the file, (2, 4) in the model', 'the config it was trained with']),
}


@pytest.mark.parametrize('case', sorted(CHECKPOINTS))
def test_bad_checkpoint_is_refused(case, tmp_path, monkeypatch):
    write, error, words = CHECKPOINTS[case]
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / 'bad.pth')
    write(path, 'PAYLOAD_RAN')
    with pytest.raises(error) as info:
        check_checkpoint_fits(qnet(), path, 'test')
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert path in str(info.value)
    assert not (tmp_path / 'PAYLOAD_RAN').exists()  # the payload never ran


def _arg_error(call):
    with pytest.raises(BadArgumentError) as info:
        call()
    return str(info.value)


# (call with a bad argument, words its message must hold)
ARGUMENTS = {
    'bits 0': (lambda: QuantReLU(bits=0), ['bits', 'in 1..8', 'got 0']),
    'bits 9': (lambda: quantize_model(nn.ReLU(), bits=9), ['got 9']),
    "bits '3'": (lambda: QuantReLU(bits='3'),
                 ["the string '3'", 'write bits=3 without quotes']),
    'bits 2.5': (lambda: quantize_model(nn.ReLU(), bits=2.5),
                 ['got 2.5 (float)']),
    'timesteps 0': (lambda: convert_to_snn(qnet(), timesteps=0),
                    ['timesteps must be an integer >= 1', 'got 0']),
    'timesteps -1': (lambda: convert_to_snn(qnet(), timesteps=-1),
                     ['got -1']),
    "timesteps '7'": (lambda: convert_to_snn(qnet(), timesteps='7'),
                      ['write timesteps=7 without quotes']),
    'unknown neuron': (lambda: convert_to_snn(qnet(), neuron='lif'),
                       ["'signed', 'unsigned'", "got 'lif'"]),
    'unknown mode': (lambda: convert_to_snn(qnet(), mode='fast'),
                     ["'folded', 'streaming'", "got 'fast'"]),
    'time_chunk with streaming': (
        lambda: convert_to_snn(qnet(), mode='streaming', time_chunk=2),
        ['folded mode only', 'drop time_chunk']),
}


@pytest.mark.parametrize('case', sorted(ARGUMENTS))
def test_bad_argument_is_refused(case):
    call, words = ARGUMENTS[case]
    msg = _arg_error(call)
    for word in words:
        assert word in msg, (word, msg)


def test_bad_config_fields_fail_when_the_model_is_built():
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    base = dict(type='FastSNNImageClassifier',
                backbone=dict(type='QResNet', depth=18, base_channels=8),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=2,
                          in_channels=64))
    for fields, words in [
            (dict(quant=dict(bits='3')), ['write bits=3 without quotes']),
            (dict(quant=dict(bit=3)), ['unknown key(s) bit', 'takes bits']),
            (dict(quant=dict(alpha=2.0)), ['needs bits']),
            (dict(quant=dict(bits=3), snn=dict(T=7)),
             ['unknown key(s) T', 'timesteps']),
            (dict(quant=dict(bits=3), snn=dict(timesteps=0)), ['got 0'])]:
        # another test may have left another package's scope current
        with pytest.raises(BadArgumentError) as info, \
                DefaultScope.overwrite_default_scope('mmpretrain'):
            MODELS.build(dict(base, **fields))
        for word in words:
            assert word in str(info.value), (word, str(info.value))


def test_unconvertible_layer_and_missing_quant_relu():
    with pytest.raises(UnconvertibleModelError) as info:
        convert_to_snn(qnet(pool=nn.AdaptiveMaxPool2d(1)))
    assert '4: AdaptiveMaxPool2d -> use AdaptiveAvgPool2d' in str(info.value)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(UnconvertibleModelError,
                       match='no QuantReLU; quantize'):
        convert_to_snn(plain)
    assert isinstance(info.value, FastSNNError)


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
@pytest.mark.parametrize('mode', ['folded', 'streaming'])
def test_nan_or_inf_input_is_refused_not_spiked(value, mode):
    snn = convert_to_snn(qnet(), mode=mode)
    x = torch.rand(3, 3, 8, 8)
    good = snn(x)
    bad = x.clone()
    bad[1, 0, 2, 2] = value
    with pytest.raises(BadInputError) as info:
        snn(bad)
    kind = 'NaN' if value != value else 'Inf'
    msg = str(info.value)
    assert f'1 {kind}' in msg and 'sample(s) 1 of 3' in msg
    assert 'fix the data' in msg
    assert torch.equal(snn(x), good)  # refused before any neuron ran


def test_input_check_runs_once_per_batch(monkeypatch):
    """One check (one host sync) per batch, also when the runner cuts the
    batch into slices or the steps into chunks."""
    from fastsnn_mm.spiking import plan, runner
    calls = []
    real = runner.check_snn_input
    monkeypatch.setattr(runner, 'check_snn_input',
                        lambda m, x: calls.append(x.shape) or real(m, x))
    monkeypatch.setattr(plan, 'FOLD_BYTES', 4096)  # force slices
    snn = convert_to_snn(qnet(), time_chunk=None)
    snn(torch.rand(6, 3, 8, 8))
    assert calls == [(6, 3, 8, 8)]
    chunked = convert_to_snn(qnet(), time_chunk=2)
    chunked(torch.rand(2, 3, 8, 8))
    assert len(calls) == 2


def test_wrong_number_of_channels_is_refused():
    snn = convert_to_snn(qnet())
    with pytest.raises(BadInputError) as info:
        snn(torch.rand(2, 1, 8, 8))
    msg = str(info.value)
    assert '1 channel(s) per image' in msg and 'first conv (0) takes 3' in msg
    assert 'grayscale -> RGB' in msg


def test_training_mode_model_converts_for_inference_and_says_so(capsys):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('bad_inputs_train_mode', log_level='INFO')
    net = qnet().train()
    with _captured(logger) as lines:
        snn = convert_to_snn(net, timesteps=3)
    assert not snn.training and not any(m.training for m in snn.modules())
    assert net.training  # the caller's model (a copy was converted) as it was
    line = [ln for ln in lines if 'running as an SNN' in ln]
    assert len(line) == 1
    assert 'T=3, neuron=signed, mode=folded, 2 neuron layers' in line[0]
    assert 'was in training mode' in line[0] and 'eval mode' in line[0]


class _captured:
    """Collect what mmengine's current logger writes."""

    def __init__(self, logger):
        self.logger, self.lines = logger, []

    def __enter__(self):
        lines = self.lines

        class Keep(logging.Handler):
            def emit(self, record):
                lines.append(record.getMessage())
        self.handler = Keep()
        self.logger.addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)


def test_load_from_another_bit_width_is_allowed_and_logged(tmp_path):
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    path = str(tmp_path / 'epoch_4bit.pth')
    text = Config(dict(model=dict(type='X', quant=dict(bits=4)))).pretty_text
    torch.save({'state_dict': qnet(bits=4).state_dict(),
                'meta': {'cfg': text}}, path)
    logger = MMLogger.get_instance('bad_inputs_bits', log_level='INFO')
    with _captured(logger) as lines:
        found = check_checkpoint_fits(qnet(bits=3), path, 'load_from')
    assert (found['bits_then'], found['bits_now']) == (4, 3)
    assert any('trained at 4 bits, this model has 3' in line and
               'progressive QAT' in line for line in lines), lines
    # a full-precision start is allowed too, and points at the hook
    fp = str(tmp_path / 'fp32.pth')
    _full_precision(fp, None)
    with _captured(logger) as lines:
        check_checkpoint_fits(qnet(), fp, 'load_from')
    assert any('QuantAlphaCalibrationHook' in line for line in lines), lines
    # an SNN checkpoint (thresholds) fits its QANN (clips) and back
    snn_state = convert_to_snn(qnet()).module.state_dict()
    torch.save({'state_dict': snn_state}, fp)
    assert check_checkpoint_fits(qnet(), fp, 'test')['missing'] == []
    state, _ = read_state_dict(fp)
    assert any(k.endswith('theta') for k in state)


# -- data ------------------------------------------------------------------
def _data_options(root):
    return [f'{s}_dataloader.dataset.data_root={root}'
            for s in ('train', 'val', 'test')]


def _det_cfg(root):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs/yolo_fastsnn_synthetic.py'))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root
    return cfg


def _seg_cfg(root):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO,
                                   'configs/deeplab_fastsnn_synthetic.py'))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root
    return cfg


@pytest.fixture
def voc_copy(tiny_voc, tmp_path):
    import shutil
    root = str(tmp_path / 'voc')
    shutil.copytree(tiny_voc, root)
    return root


def _first_id(root):
    return open(osp.join(root, 'VOC2007/ImageSets/Main/train.txt')
                ).readline().strip()


def _break_xml(root):
    path = osp.join(root, 'VOC2007/Annotations', _first_id(root) + '.xml')
    open(path, 'w').write('<annotation><object><name>circle</name>')
    return path


def _break_image(root):
    path = osp.join(root, 'VOC2007/JPEGImages', _first_id(root) + '.jpg')
    open(path, 'wb').write(b'\xff\xd8 this is not a jpeg')
    return path


def _rgb_label_map(root):
    from PIL import Image
    path = osp.join(root, 'VOC2007/SegmentationClass',
                    _first_id(root) + '.png')
    Image.open(path).convert('RGB').save(path)
    return path


def _rgba_image_unchanged(root):
    """A 4-channel PNG, loaded with color_type='unchanged'."""
    from PIL import Image
    line = open(osp.join(root, 'classification/meta/train.txt')).readline()
    path = osp.join(root, 'classification/train', line.split()[0])
    Image.open(path).convert('RGBA').save(path)
    return path


def _cls_unchanged(root):
    cfg = tiny_cls_config(root, '/tmp/unused')
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.pipeline[0]['color_type'] = \
            'unchanged'
    return cfg


def _empty_list(root):
    path = osp.join(root, 'VOC2007/ImageSets/Main/train.txt')
    open(path, 'w').close()
    return path


# (config maker, data breaker, error type, words)
DATA = {
    'annotation XML that does not parse': (
        _det_cfg, _break_xml, DataError, ['is not valid XML', 'drop its id']),
    'image that cannot be read': (
        _det_cfg, _break_image, DataError, ['cannot be read', 'valid image']),
    'label map with 3 channels': (
        _seg_cfg, _rgb_label_map, DataError,
        ['has 3 channels', 'one channel of class indices']),
    'image with 4 channels': (
        _cls_unchanged, _rgba_image_unchanged, DataError,
        ["4 channel(s) and is loaded with color_type='unchanged'",
         'model takes 3']),
    'empty split list': (_det_cfg, _empty_list, DataError, ['is empty']),
}


@pytest.mark.parametrize('case', sorted(DATA))
def test_bad_data_file_is_named(case, voc_copy):
    from fastsnn_mm.datasets import check_data_files
    make_cfg, breaks, error, words = DATA[case]
    cfg = make_cfg(voc_copy)
    assert check_data_files(cfg) > 0  # the intact copy passes
    path = breaks(voc_copy)
    with pytest.raises(error) as info:
        check_data_files(cfg)
    assert path in str(info.value)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_missing_or_empty_data_root(tmp_path):
    from fastsnn_mm.datasets import check_data_root
    cfg = _det_cfg(str(tmp_path / 'nowhere'))
    with pytest.raises(MissingFileError, match='nowhere.*not found.*'
                       'make_synthetic_voc.py'):
        check_data_root(cfg)
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(MissingFileError, match='data root .*empty is empty'):
        check_data_root(_det_cfg(str(tmp_path / 'empty')))


def test_interrupted_data_generation_leaves_old_tree_whole(tmp_path,
                                                           monkeypatch):
    from fastsnn_mm.datasets import synthetic_voc
    out = str(tmp_path / 'data')
    synthetic_voc.generate_synthetic_voc(out, 2, 1, seed=0, size=32)
    before = sorted(os.listdir(osp.join(out, 'VOC2007/JPEGImages')))
    real, written = synthetic_voc._write, []

    def dies_midway(path, data):
        if len(written) == 7:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        written.append(path)
        real(path, data)
    monkeypatch.setattr(synthetic_voc, '_write', dies_midway)
    with pytest.raises(KeyboardInterrupt):
        synthetic_voc.generate_synthetic_voc(out, 5, 2, seed=1, size=32)
    assert sorted(os.listdir(out)) == ['VOC2007', 'classification']
    assert sorted(os.listdir(osp.join(out, 'VOC2007/JPEGImages'))) == before
    monkeypatch.setattr(synthetic_voc, '_write', real)
    synthetic_voc.generate_synthetic_voc(out, 5, 2, seed=1, size=32)
    assert len(os.listdir(osp.join(out, 'VOC2007/JPEGImages'))) == 7


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    from fastsnn_mm.utils.safe_checkpoint import save_checkpoint_atomic
    path = str(tmp_path / 'snn.pth')
    save_checkpoint_atomic({'state_dict': {'w': torch.ones(2)}}, path)

    def dies(obj, f):
        f.write(b'half a checkpoint')
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, 'save', dies)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_atomic({'state_dict': {'w': torch.zeros(2)}}, path)
    assert os.listdir(tmp_path) == ['snn.pth']
    monkeypatch.undo()
    assert torch.equal(read_state_dict(path)[0]['w'], torch.ones(2))


def test_a_stop_inside_torch_save_stays_a_stop(tmp_path):
    """SIGTERM (a SystemExit, utils.launch.stop_on_sigterm) raised while
    torch.save writes: its zip writer's clean-up then fails on the cut
    stream ("unexpected pos"), and that RuntimeError, printed as a
    traceback, hid the stop (a rank stopped mid-checkpoint, seen in
    tests/test_killed_rank.py). The stop comes out; nothing is left."""
    from fastsnn_mm.utils.atomic import atomic_write
    path = str(tmp_path / 'progress.pth')

    class Cut:
        def __init__(self, f):
            self.f, self.calls = f, 0

        def write(self, data):
            self.calls += 1
            if self.calls == 3:
                raise SystemExit(143)
            return self.f.write(data)

        def flush(self):
            self.f.flush()

    with pytest.raises(SystemExit) as stop:
        atomic_write(path, lambda f: torch.save(
            {'w': torch.ones(1000)}, Cut(f)))
    assert stop.value.code == 143 and stop.value.__suppress_context__
    assert os.listdir(tmp_path) == []


# -- the tools: one line on stderr, no traceback ---------------------------
CLS = 'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py'


def _shrink(root):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            'model.backbone.base_channels=8', 'model.head.in_channels=64']


def _assert_one_line(code, err, *words):
    assert code == 2, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err[-3000:]
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def run_tool(monkeypatch, capsys):
    """Run tools/<name>.py in this process (importing the mm stack again in
    a subprocess takes longer than the checks); returns (exit code,
    stderr). An exception that escapes the tool fails the test."""
    import runpy

    from fastsnn_mm.utils import allocator
    monkeypatch.setattr(allocator, 'retain_freed_memory', lambda: True)
    monkeypatch.chdir(REPO)

    def run(name, *args):
        monkeypatch.setattr(sys, 'argv', [f'tools/{name}.py', *map(str, args)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            runpy.run_path(osp.join(REPO, 'tools', f'{name}.py'),
                           run_name='__main__')
        return info.value.code, capsys.readouterr().err
    return run


def test_tools_time_chunk_with_streaming(run_tool, tmp_path):
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'x')
    code, err = run_tool('test', CLS, ckpt, '--snn', '--mode', 'streaming',
                         '--time-chunk', '2')
    _assert_one_line(code, err, '--time-chunk applies to --mode folded only',
                     'drop --time-chunk')


def test_tools_refuse_bad_config_values_and_data(run_tool, voc_copy,
                                                 tmp_path):
    work = tmp_path / 'work'
    code, err = run_tool('train', CLS, '--work-dir', work,
                         *_shrink(voc_copy), 'model.quant.bits=9')
    _assert_one_line(code, err, 'bits must be an integer in 1..8',
                     'got 9')
    code, err = run_tool('test', CLS, tmp_path / 'x.pth', '--snn',
                         '--timesteps', '0')
    _assert_one_line(code, err, '--timesteps must be >= 1, got 0')
    bad_cfg = tmp_path / 'bad_cfg.py'
    bad_cfg.write_text("model = dict(type='X'\n")
    code, err = run_tool('train', bad_cfg)
    _assert_one_line(code, err, f'config {bad_cfg} is not valid Python',
                     'never closed')
    code, err = run_tool('train', CLS, '--cfg-options', 'model.head=3',
                         'model.head.in_channels=64')
    _assert_one_line(code, err, '--cfg-options cannot be applied to')
    path = _break_xml(voc_copy)
    code, err = run_tool('train', 'configs/yolo_fastsnn_synthetic.py',
                         '--work-dir', work, '--cfg-options',
                         *_data_options(voc_copy))
    _assert_one_line(code, err, path, 'is not valid XML')
    assert not os.path.exists(work / 'epoch_1.pth')


def test_tools_refuse_full_precision_checkpoint(run_tool, tiny_voc,
                                                tmp_path):
    from mmengine.runner import Runner
    cfg = tiny_cls_config(tiny_voc, tmp_path)
    del cfg.model['quant']  # a full-precision classifier of the same shape
    cfg.model.backbone.act_cfg = dict(type='ReLU')
    # a name of its own: a runner of the same config in the same second
    # would share the tool's logger (mmengine names loggers by time)
    cfg.experiment_name = 'fp32_source'
    fp = str(tmp_path / 'fp32.pth')
    torch.save({'state_dict': Runner.from_cfg(cfg).model.state_dict()}, fp)
    code, err = run_tool('test', CLS, fp, '--snn', '--work-dir', tmp_path,
                         *_shrink(tiny_voc))
    _assert_one_line(code, err, 'full-precision checkpoint',
                     'QuantAlphaCalibrationHook')


def test_tool_runs_in_one_process_log_to_their_own_streams(
        tiny_voc, tmp_path, monkeypatch):
    """Two in-process runs of a tool in the same second, each with streams
    of its own that are closed after it (as pytest's capture of one test is
    at its end). mmengine names a run's logger by config and second and
    hands back an existing one of that name: before the tools released
    theirs (``run_main``), the second run logged through the first run's
    closed stdout, and stderr got ``--- Logging error ---`` and a traceback.
    """
    import contextlib
    import io
    import runpy
    import time
    import types

    import mmengine.runner.runner as runner_module
    from mmengine.logging import MMLogger
    # every Runner made here gets the same second, as on a fast machine
    monkeypatch.setattr(runner_module, 'time', types.SimpleNamespace(
        time=time.time, localtime=time.localtime,
        strftime=lambda fmt, t=None: '20240101_000000'))
    monkeypatch.chdir(REPO)
    loggers_before = set(MMLogger._instance_dict)
    monkeypatch.setattr(sys, 'argv', [
        'tools/train.py', CLS, '--work-dir', str(tmp_path / 'work'),
        *_shrink(tiny_voc), 'model.quant.bits=9'])
    runs = []
    for _ in range(2):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err), \
                pytest.raises(SystemExit) as info:
            runpy.run_path(osp.join(REPO, 'tools/train.py'),
                           run_name='__main__')
        runs.append((info.value.code, out.getvalue(), err.getvalue()))
        out.close(), err.close()
    for code, out, err in runs:
        assert 'Logging error' not in err, err[-3000:]
        _assert_one_line(code, err, 'bits must be an integer in 1..8')
        # the run's logger wrote to this run's stdout (the check can fail)
        assert 'System environment' in out, out[-500:]
    assert set(MMLogger._instance_dict) == loggers_before  # none left over


def test_tools_truncated_checkpoint_end_to_end(tiny_voc, tmp_path):
    """The same path in a process of its own: stderr holds one line."""
    bad = str(tmp_path / 'truncated.pth')
    _truncated(bad, None)
    out = subprocess.run(
        [sys.executable, 'tools/test.py', CLS, bad, '--snn', '--work-dir',
         str(tmp_path), *_shrink(tiny_voc)],
        cwd=REPO, text=True, capture_output=True, timeout=300)
    _assert_one_line(out.returncode, out.stderr, bad, 'truncated',
                     'save or copy it again')
