# lucerag: two commands do all the set-up on a fresh machine (Python >= 3.12, no Java needed).
#   make demo   create .venv, install, export the ONNX encoder, index docs/, answer a question
#   make test   the same set-up, then the whole test suite
# Python >= 3.12 (pyserini 2.4 / Anserini 2.3 / Lucene 10): python3.12 on PATH, else pyenv's 3.12.
PYTHON ?= $(shell command -v python3.12 >/dev/null 2>&1 && python3.12 -c '' 2>/dev/null && echo python3.12 || \
            { p=$$(pyenv prefix 3.12.1 2>/dev/null || pyenv prefix 3.12 2>/dev/null) && echo $$p/bin/python; } || echo python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.lucerag-installed

.PHONY: install model demo test bridge clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { echo "lucerag needs Python >= 3.12 (found $$($(PYTHON) --version 2>&1) as $(PYTHON)); install one, or run make PYTHON=/path/to/python3.12" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of PyTorch first (export only): an unpinned torch pulls GBs of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	# The Anserini 2.x jar (Lucene 10) only: pyserini's own dependencies pull PyTorch and CUDA packages.
	$(BIN)/pip install -q --no-deps pyserini==2.4.0
	$(BIN)/pip install -q -e '.[export,test]'
	touch $(STAMP)

install: $(STAMP)

model: install
	$(BIN)/python -c "from lucerag.models import load_encoder; print(load_encoder(None))"

demo: model
	$(BIN)/lucerag demo --corpus docs

test: model
	$(BIN)/python -m pytest -q

# Rebuild the small Java helper jar (needs a javac >= 21 or Debian's ecj; the jar is committed).
bridge: install
	PATH=$(BIN):$$PATH plugin/java/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
