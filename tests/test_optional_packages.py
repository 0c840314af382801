"""fastsnn_mm imports with only the mm task packages a user installed.

Each test runs a fresh interpreter in which some packages cannot be
imported (``sys.modules[name] = None`` before anything else: an import of
them raises ModuleNotFoundError, as when they are not installed).
"""
import subprocess
import sys
import textwrap

from conftest import REPO


def _run(blocked, body, timeout=300):
    code = textwrap.dedent(f'''
        import sys
        for name in {list(blocked)!r}:
            sys.modules[name] = None
        ''') + textwrap.dedent(body)
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, text=True,
                         capture_output=True, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


def test_classification_needs_neither_mmdet_nor_mmseg():
    code, out, err = _run(['mmdet', 'mmseg'], '''
        import torch
        import fastsnn_mm
        from fastsnn_mm.models import MISSING_PACKAGES
        from mmpretrain.registry import MODELS
        model = MODELS.build(dict(
            type='FastSNNImageClassifier',
            backbone=dict(type='QResNet', depth=18, base_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=64),
            quant=dict(bits=2))).eval()
        x = torch.rand(2, 3, 16, 16)
        qann = model(x)
        model.to_snn()
        snn = model(x)
        print('shapes', tuple(qann.shape), tuple(snn.shape))
        print('missing', sorted(MISSING_PACKAGES))
        print('loaded', sorted(m for m in ('mmdet', 'mmseg')
                               if sys.modules.get(m) is not None))
        from mmengine.registry import MODELS as ROOT
        try:
            ROOT.build(dict(type='FastSNNSingleStageDetector'))
        except ImportError as e:
            print('det:', type(e).__name__, e)
        ''')
    assert code == 0, err[-3000:]
    assert 'shapes (2, 3) (2, 3)' in out
    assert "missing ['mmdet', 'mmseg']" in out and 'loaded []' in out
    assert 'det: MissingPackageError' in out
    assert 'needs mmdet, which is not installed: pip install mmdet==3.3.0' \
        in out


def test_spiking_core_and_quantization_need_only_mmengine_and_torch():
    code, out, err = _run(['mmcv', 'mmdet', 'mmseg', 'mmpretrain'], '''
        import torch
        from torch import nn
        from fastsnn_mm.quantization import QuantReLU, quantize_model
        from fastsnn_mm.spiking import convert_to_snn
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                            nn.LazyLinear(2))
        net(torch.rand(1, 3, 6, 6))
        quantize_model(net, bits=3, alpha=1.0)
        snn = convert_to_snn(net.eval())
        y = snn(torch.rand(2, 3, 6, 6))
        print('out', tuple(y.shape), snn.timesteps)
        print('loaded', sorted(m for m in ('mmcv', 'mmdet', 'mmseg',
                                           'mmpretrain')
                               if sys.modules.get(m) is not None))
        ''')
    assert code == 0, err[-3000:]
    assert 'out (2, 2) 7' in out and 'loaded []' in out


def test_config_of_a_missing_package_names_what_to_install(tmp_path):
    """tools/train.py and tools/test.py say which package to install, in
    one line, for a config whose model lives in a missing package."""
    config = tmp_path / 'det_without_mmdet.py'
    config.write_text(textwrap.dedent('''
        custom_imports = dict(imports=['fastsnn_mm'])
        default_scope = 'mmdet'
        model = dict(type='FastSNNSingleStageDetector', quant=dict(bits=3))
        '''))
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'x')
    code, out, err = _run(['mmdet'], f'''
        import contextlib, io, runpy
        for tool, args in (('tools/train.py', []),
                           ('tools/test.py', [{str(ckpt)!r}])):
            sys.argv = [tool, {str(config)!r}, *args]
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                try:
                    runpy.run_path(tool, run_name='__main__')
                except SystemExit as e:
                    print(tool, 'exit', e.code)
            print(tool, 'stderr', repr(err.getvalue()))
        ''')
    assert code == 0, err[-3000:]
    for tool in ('tools/train.py', 'tools/test.py'):
        assert f'{tool} exit 2' in out, out
        stderr = eval(out.split(f'{tool} stderr ')[1].splitlines()[0])
        assert 'Traceback' not in stderr, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: '), stderr
        assert 'model type FastSNNSingleStageDetector' in lines[0] or \
            "default_scope='mmdet'" in lines[0], lines[0]
        assert 'needs mmdet, which is not installed: pip install ' \
            'mmdet==3.3.0' in lines[0], lines[0]


def test_config_inheriting_a_missing_package_names_it(monkeypatch, capsys):
    """A config whose ``_base_`` is ``mmdet::...`` with mmdet not installed
    (mmengine's installed check answering no, as it does then)."""
    import os.path as osp
    import runpy

    import pytest
    from mmengine.config import config as mm_config
    monkeypatch.setattr(mm_config, 'is_installed', lambda p: p != 'mmdet')
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, 'argv', ['tools/train.py',
                                      'configs/yolo_fastsnn_synthetic.py'])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(osp.join(REPO, 'tools/train.py'), run_name='__main__')
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err == ('error: config configs/yolo_fastsnn_synthetic.py inherits '
                   'configs of mmdet, which is not installed: pip install '
                   'mmdet==3.3.0')
