# Every target installs what it needs first (idempotent: seconds once done).
PY := .venv/bin/python
DATA := data/synthetic_voc

.PHONY: install data demo demo-seg test lint bench gpu-wheels clean

install:
	bash tools/install.sh

$(DATA)/.complete-test: | install
	$(PY) tools/dataset_converters/make_synthetic_voc.py --out $(DATA) --num-train 400 --num-val 100 --seed 0 --num-test 200
	touch $@

data: install $(DATA)/.complete-test

demo: install data
	bash tools/demo.sh cls det finetune

demo-seg: install data
	bash tools/demo.sh seg

bench: install
	$(PY) benchmarks/bench_qat_step.py
	mkdir -p work_dirs/bench
	$(PY) benchmarks/bench_snn.py --reference --mem-batch 1 2 4 8 32 --plot work_dirs/bench/snn_time.png
	$(PY) benchmarks/bench_neuron.py --device cpu

# Pure-Python wheels that benchmarks/run_gpu.sh installs on a GPU machine
# with torch but no network (python 3.12 there): mmengine and what it
# imports that such a machine lacks, SpikingJelly for the neuron benchmark.
GPU_WHEELS := benchmarks/wheels
gpu-wheels:
	python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
		-d $(GPU_WHEELS) mmengine==0.10.7 addict==2.4.0 yapf==0.43.0 \
		termcolor==3.3.0 platformdirs==4.5.1 spikingjelly==2.0.0 loguru==0.7.3

test: install
	$(PY) -m pytest tests

# pyflakes, pycodestyle, import order (settings in pyproject.toml)
lint: install
	$(PY) -m ruff check .

clean:
	rm -rf work_dirs outputs
