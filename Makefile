# Every target installs what it needs first (idempotent: seconds once done).
PY := .venv/bin/python
DATA := data/synthetic_voc

.PHONY: install data demo demo-seg test bench clean

install:
	bash tools/install.sh

$(DATA)/.complete: | install
	$(PY) tools/dataset_converters/make_synthetic_voc.py --out $(DATA) --num-train 400 --num-val 100 --seed 0
	touch $@

data: install $(DATA)/.complete

demo: install data
	bash tools/demo.sh cls det finetune

demo-seg: install data
	bash tools/demo.sh seg

bench: install
	$(PY) benchmarks/bench_qat_step.py
	mkdir -p work_dirs/bench
	$(PY) benchmarks/bench_snn.py --reference --mem-batch 1 2 4 8 32 --plot work_dirs/bench/snn_time.png

test: install
	$(PY) -m pytest tests

clean:
	rm -rf work_dirs outputs
