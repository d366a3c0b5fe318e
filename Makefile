# Set-up and every job of the project. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Where the workplace provides a local CIFAR-10 copy, use it unless told otherwise.
ifeq ($(CIFAR10_DIR),)
  ifneq ($(wildcard ../shared/tools/cifar10),)
    CIFAR10_DIR := $(shell ../shared/tools/cifar10)
  endif
endif
export CIFAR10_DIR

.PHONY: help install data reference grade test test-slow bench cases clean handout autograder-zip check-image

help:
	@echo "make install    create $(VENV) with everything (idempotent)"
	@echo "make grade      grade the reference submission solutions/cnn end to end"
	@echo "make test       run the test suite, apart from the tests marked slow"
	@echo "make test-slow  run the tests marked slow (CI runs both)"
	@echo "make data       download CIFAR-10 (official archive, MD5-checked)"
	@echo "make reference  retrain the reference checkpoints and curves in solutions/cnn"
	@echo "make cases      regenerate the grader's test cases (autograder/cases) from solutions/"
	@echo "make bench      cost of grading the reference, part by part, then whole grades of the reference and"
	@echo "                of an at-limits submission in a box of Gradescope's default machine (0.5 CPU, 768 MB; root)"
	@echo "make handout    regenerate assignments/ and dist/handout.zip from solutions/ (cases first, if stale)"
	@echo "                (verify without writing: $(PY) -m autograder handout --check)"
	@echo "make autograder-zip  build dist/autograder.zip (upload it to Gradescope; cases first, if stale)"
	@echo "make check-image     build the Gradescope image for real (Ubuntu 22.04 chroot, root, network),"
	@echo "                     run setup.sh and run_autograder on the reference (not part of make test)"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so nothing below can pull a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

data: $(STAMP)
	cd solutions/cnn && ../../$(PY) data.py

reference: $(STAMP)
	cd solutions/cnn && ../../$(PY) train.py convnet-cpu --device cpu --out convnet.pt --log convnet_curve.json
	cd solutions/cnn && ../../$(PY) train.py fcnet --device cpu --out fcnet.pt --log fcnet_curve.json

grade: $(STAMP)
	$(PY) -m autograder grade solutions/cnn

# Both ship case data: cases stale against solutions/cnn/layers.py are rebuilt first.
handout: $(STAMP)
	$(PY) -m autograder build-cases --if-stale
	$(PY) -m autograder handout

autograder-zip: $(STAMP)
	$(PY) -m autograder build-cases --if-stale
	$(PY) -m autograder autograder-zip

check-image: autograder-zip
	bash tests/gradescope_image/check_image.sh

cases: $(STAMP)
	$(PY) -m autograder build-cases

bench: $(STAMP)
	$(PY) -m autograder bench

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf dist .pytest_cache results.json
