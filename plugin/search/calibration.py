"""The relevance filter: scores -> probability of relevance -> one global threshold.

Raw scores mean different things for different queries: a cosine of 0.45 may be the best
answer to one question and noise for another. Following the idea of query-dependent score
mapping (Rossi et al., "Relevance Filtering for Embedding-based Retrieval", CIKM 2024), each
candidate is described by its own scores *and* by where they sit in its query's score
distribution; a logistic model maps that to P(relevant). One global threshold then decides
what reaches the LLM, and an empty list means nothing was relevant enough.

Applying the model is a few numpy operations (no scikit-learn at query time).

A second model, ``mixture`` (the shipped default), fits nothing on labels: a per-query
score-distribution model (:mod:`lucerag.search.scoredist`) gives P(relevant | answerable), and an
answerability gate on the best cosine, set on each corpus from questions it cannot answer and opened
by lexical evidence (:mod:`lucerag.search.lexical`), gives P(answerable); see :class:`Calibrator`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr, model_validator

from lucerag.search.fusion import Candidates
from lucerag.search.scoredist import SD_FLOOR, fit_mixture

if TYPE_CHECKING:
    from lucerag.search.lexical import TermCoverage

FEATURES = (
    "dense",            # cosine similarity
    "dense_gap",        # the query's best cosine minus this one
    "dense_z",          # (cosine - mean) / std over the query's head
    "dense_top",        # the query's best cosine (how answerable the query is)
    "dense_over_q10",   # cosine minus the query's 10th best
    "dense_rank_log",   # log(rank by cosine within the head)
    "bm25_rel",         # BM25 / the query's best BM25
    "bm25_z",           # (BM25 - mean) / std over the query's head
    "bm25_rank_log",    # log(rank by BM25 within the head)
    "fused",            # fused score (per-query normalised)
    "fused_rank_log",   # log(fused rank within the head)
    "standout_dense",   # how far the query's top cosines rise above its list (lucerag.search.adaptive)
    "standout_bm25",    # the same for BM25
    "overlap",          # share of the two views' top 10 in common
)
# Every feature is either a cosine (the encoder's scale, the same on any corpus), a rank, or a
# ratio of score differences within the query's own list: nothing depends on a collection's BM25
# scale (document length, idf) or on query length, which differ between collections.


def _ranks_within(scores: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """1-based rank of each score among the reference scores (ties share the better rank)."""
    desc = -np.sort(ref)[::-1]
    return np.searchsorted(desc, -scores, side="left") + 1.0


def features(c: Candidates, fused: np.ndarray, query: str = "", depth: int | None = None) -> np.ndarray:
    """Feature matrix (n candidates x len(FEATURES)) for one query's candidates.

    Statistics come from the head (the top ``depth`` of either view; all when None), so a
    candidate's features do not change when more candidates are retrieved. ``query`` is unused
    (kept for callers of the first version)."""
    from lucerag.search.adaptive import list_features
    from lucerag.search.fusion import head

    n = len(c)
    if n == 0:
        return np.zeros((0, len(FEATURES)))
    h = head(c, depth)
    dense = c.dense.astype(np.float64)
    bm25 = np.maximum(c.bm25.astype(np.float64), 0.0)
    fused = fused.astype(np.float64)
    dh, bh, fh = dense[h], bm25[h], fused[h]
    top, spread = dh.max(), dh.std()
    bm25_top, bm25_sd = bh.max(), bh.std()
    q10 = np.sort(dh)[::-1][min(9, len(dh) - 1)]
    phi = list_features(c, depth)
    cols = [
        dense,
        top - dense,
        (dense - dh.mean()) / spread if spread > 0 else np.zeros(n),
        np.full(n, top),
        dense - q10,
        np.log(_ranks_within(dense, dh)),
        bm25 / bm25_top if bm25_top > 0 else np.zeros(n),
        (bm25 - bh.mean()) / bm25_sd if bm25_sd > 0 else np.zeros(n),
        np.log(_ranks_within(bm25, bh)),
        fused,
        np.log(_ranks_within(fused, fh)),
        np.full(n, phi[0]),
        np.full(n, phi[1]),
        np.full(n, phi[2]),
    ]
    return np.column_stack(cols)


class Calibrator(BaseModel):
    """P(relevant) for every candidate and the cut applied to it. Two models:

    - ``logistic``: a logistic model over FEATURES fitted on judged queries; keep P >= threshold.
    - ``mixture``: no fitted weights. Two decisions: is the query answerable at all (its best cosine
      against ``gate``, a cosine set from unanswerable questions searched on the corpus, see
      :func:`gate_from_negatives`), and which candidates are relevant inside an answerable query (the
      per-query score-distribution model of :mod:`lucerag.search.scoredist` on the fused scores of the
      top ``fusion.depth``). P(relevant) = P(answerable) * P(relevant | fused score, answerable), with
      P(answerable) = sigmoid((best cosine - gate) / gate_scale). An answerable query keeps every
      candidate whose mixture posterior reaches ``threshold`` and always its most probable one.

      With ``lexical`` (default), a query under the gate whose analysed terms all occur in the passage
      BM25 ranks first (:class:`lucerag.search.lexical.TermCoverage`) counts as reaching the gate:
      answerable, P(answerable) = 0.5. Under a metadata filter the check runs within the filter
      (``filter`` of :meth:`decide`). It runs only for queries under the gate, and only once
      :meth:`for_corpus` has bound the calibrator to an index (callers holding feature rows pass
      the evidence as ``covered``).
    """

    FILENAME: ClassVar[str] = "lucerag-calibrator.json"

    model: Literal["logistic", "mixture"] = "logistic"
    features: list[str] = Field(default_factory=lambda: list(FEATURES))
    mean: list[float] = Field(default_factory=list)
    scale: list[float] = Field(default_factory=list)
    coef: list[float] = Field(default_factory=list)
    intercept: float = 0.0
    gate: float | None = None      # mixture: cosine a query's best passage must reach to be answerable
    gate_from: str = ""            # mixture: "corpus" = set the gate on each index from lucerag's own
                                   # unanswerable questions (lucerag.resources.UNANSWERABLE), see for_corpus
    gate_scale: float = 0.02       # mixture: width (cosine units) of the soft P(answerable) around the gate
    lexical: bool = True           # mixture: a query whose terms all occur in its top BM25 passage reaches
                                   # the gate (lucerag.search.lexical; docs/fusion-and-filter.md)
    sd_floor: float = SD_FLOOR     # mixture: see lucerag.search.scoredist
    threshold: float = 0.5
    objective: str = "f1"          # how the threshold was chosen: "f1" or "precision>=P"
    relevant_grade: int = 1        # judgments >= this grade counted as relevant when fitting
    encoder: str | None = None     # the encoder whose cosines it was fitted on
    encoder_precision: str | None = None  # its precision (fp32/int8) and export recipe
    encoder_recipe: int | None = None
    fusion: dict = Field(default_factory=dict)  # fusion settings its fused-score features came from
    trained_on: str = ""
    queries: int = 0
    candidates: int = 0
    _coverage: "TermCoverage | None" = PrivateAttr(default=None)  # the index's, bound by for_corpus

    @model_validator(mode="after")
    def _complete(self) -> "Calibrator":
        if self.model == "logistic" and not (len(self.coef) == len(self.mean) == len(self.scale)
                                             == len(self.features) > 0):
            raise ValueError("a logistic calibrator needs mean, scale and coef, one per feature")
        if self.model == "mixture" and self.gate is None:
            raise ValueError("a mixture calibrator needs its answerability gate")
        return self

    def probabilities(self, x: np.ndarray, covered: bool | None = None) -> np.ndarray:
        """P(relevant) for each row of one query's feature matrix (:func:`features`), shape (len(x),).

        For the mixture model the rows are taken as the query's head (its top ``fusion.depth``
        by fused score are fitted); ``covered`` is the query's lexical evidence
        (:meth:`lucerag.search.lexical.TermCoverage.covered`; None: none)."""
        if len(x) == 0:
            return np.zeros(0)
        if self.model == "mixture":
            fused = x[:, FEATURES.index("fused")]
            return self._mixture(fused, float(x[0, FEATURES.index("dense_top")]),
                                 np.ones(len(x), bool), self.fusion.get("depth"), covered)[0]
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def for_corpus(self, retriever) -> "Calibrator":
        """This calibrator adapted to ``retriever``'s index without labels. For a mixture calibrator:
        a copy bound to the index's BM25 view for the lexical evidence (with ``lexical``), and, with
        ``gate_from == "corpus"``, whose gate is the second-highest best cosine that lucerag's
        packaged unanswerable questions reach on this index (:func:`corpus_gate`; one search per
        question, done once per retriever). Any other calibrator is returned as it is."""
        if self.model != "mixture":
            return self
        bound = self
        if self.lexical and getattr(retriever, "bm25", None) is not None:
            from lucerag.search.lexical import TermCoverage

            bound = self.model_copy()
            bound._coverage = TermCoverage(retriever.bm25)
        if self.gate_from != "corpus":
            return bound
        from lucerag.resources import UNANSWERABLE

        try:
            gate = corpus_gate(retriever, read_questions(UNANSWERABLE))
        except ValueError:  # no question found a candidate (an empty index): keep the shipped gate
            return bound
        except Exception as exc:  # noqa: BLE001  e.g. a query encoder that only knows certain texts
            import warnings

            from lucerag.errors import CalibratorWarning

            warnings.warn(f"could not set the relevance filter's answerability gate on this index "
                          f"({type(exc).__name__}: {exc}); using the shipped gate {self.gate}. Store one "
                          "with `lucerag calibrate --model mixture`", CalibratorWarning, stacklevel=4)
            return bound
        return bound.model_copy(update={"gate": gate, "trained_on": f"{self.trained_on}; gate set on this index"})

    def cut(self, x: np.ndarray, threshold: float | None = None, covered: bool | None = None) -> np.ndarray:
        """Which rows of one query's feature matrix the filter keeps, shape (len(x),): the rule of
        :meth:`decide` on feature rows (the mixture model fits the rows as the query's head;
        ``covered`` as in :meth:`probabilities`)."""
        t = self.threshold if threshold is None else threshold
        if len(x) == 0:
            return np.zeros(0, bool)
        if self.model != "mixture":
            return self.probabilities(x) >= t
        head = np.ones(len(x), bool)
        p, post, answerable = self._mixture(x[:, FEATURES.index("fused")], float(x[0, FEATURES.index("dense_top")]),
                                            head, self.fusion.get("depth"), covered)
        return _mixture_keep(p, post, answerable, head, t)

    def _mixture(self, fused: np.ndarray, best: float, fit_on: np.ndarray, depth: int | None,
                 covered: bool | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """(P(relevant), P(relevant | answerable), answerable) for the mixture model; ``covered``:
        the query's lexical evidence, used under the gate when ``lexical`` is on."""
        fused = fused.astype(np.float64)
        top = np.sort(fused[fit_on])[::-1][:depth]
        post = fit_mixture(top, self.sd_floor).posterior(fused) if len(top) >= 2 else np.ones(len(fused))
        gate = self.gate if self.gate is not None else -1.0
        if best < gate and self.lexical and covered:
            best = gate  # every query term in its top BM25 passage: the lexical evidence lifts it to the gate
        p_ans = 1.0 / (1.0 + np.exp(-(best - gate) / self.gate_scale))
        return p_ans * post, post, bool(best >= gate)

    def covered(self, query: str, top_bm25: float, filter=None) -> bool | None:
        """The lexical evidence for ``query`` (its best BM25 score ``top_bm25``) on the index
        :meth:`for_corpus` bound this calibrator to, within the metadata filter ``filter`` (its
        Lucene query on that index; None: the whole index), see
        :meth:`lucerag.search.lexical.TermCoverage.covered`; None when unbound."""
        return self._coverage.covered(query, top_bm25, filter) if self._coverage is not None else None

    def predict(self, c: Candidates, fused: np.ndarray, query: str = "", depth: int | None = None, *,
                filter=None) -> np.ndarray:
        """P(relevant) of every candidate, shape (len(c),); ``depth`` as in :func:`features`,
        ``filter`` as in :meth:`decide`."""
        return self.decide(c, fused, query, depth, filter=filter)[0]

    def decide(self, c: Candidates, fused: np.ndarray, query: str = "", depth: int | None = None,
               threshold: float | None = None, *, filter=None) -> tuple[np.ndarray, np.ndarray]:
        """(P(relevant), keep) for every candidate, each shape (len(c),).

        ``threshold`` (default: the calibrator's) applies to P(relevant) for the logistic model and
        to P(relevant | answerable) for the mixture model, whose answerable queries always keep their
        most probable candidate and whose unanswerable ones (best cosine under ``gate`` and, once
        bound by :meth:`for_corpus`, a top BM25 passage lacking some query term) keep none.

        ``filter``: the Lucene query of the metadata filter ``c`` was found under, on the BM25
        index (:meth:`lucerag.search.retriever.Retriever.filter_query`; None: no filter). The
        lexical evidence is then looked for among the passages it accepts only, as the candidates were."""
        t = self.threshold if threshold is None else threshold
        if len(c) == 0:
            return np.zeros(0), np.zeros(0, bool)
        if self.model != "mixture":
            p = self.probabilities(features(c, fused, query, depth))
            return p, p >= t
        from lucerag.search.fusion import head

        h = head(c, depth)
        best = float(c.dense[h].max())
        # the lexical evidence matters only for a query under the gate; the BM25 search may have
        # found it already (Candidates.covered), else it costs a look-up
        covered = None
        if self.lexical and best < (self.gate if self.gate is not None else -1.0):
            covered = c.covered if c.covered is not None else self.covered(query, float(c.bm25[h].max()), filter)
        p, post, answerable = self._mixture(fused, best, h, depth, covered)
        return p, _mixture_keep(p, post, answerable, h, t)

    def mismatches(self, fusion: dict, encoder=None) -> list[str]:
        """What differs between the set-up this calibrator was fitted under and ``fusion`` (a
        FusionConfig dump) / ``encoder`` (an object with ``manifest``): one phrase per difference.

        Fusion settings that do not change fused scores (rrf_k under convex, weights under rrf or
        adaptive) are not compared; nor is anything the calibrator did not record."""
        out: list[str] = []
        mine = self.fusion or {}
        if mine:
            from lucerag.search.fusion import METHOD_PARAMETERS

            method = str(mine.get("method"))
            keys = ("method", *METHOD_PARAMETERS[method], "depth") if method in METHOD_PARAMETERS else ("method",)
            for key in keys:
                if key in mine and key in fusion and mine[key] != fusion[key]:
                    out.append(f"fusion.{key} {fusion[key]!r} (fitted with {mine[key]!r})")
        m = getattr(encoder, "manifest", None)
        if m is not None:
            if self.encoder and m.name != self.encoder:
                out.append(f"encoder {m.name!r} (fitted with {self.encoder!r})")
            if self.encoder_precision and m.precision != self.encoder_precision:
                out.append(f"encoder precision {m.precision!r} (fitted with {self.encoder_precision!r})")
            if self.encoder_recipe is not None and m.recipe != self.encoder_recipe:
                out.append(f"encoder recipe {m.recipe} (fitted with {self.encoder_recipe})")
        return out

    # -- persistence ---------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / self.FILENAME
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibrator":
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILENAME
        try:
            model = cls.model_validate(json.loads(path.read_text()))
        except FileNotFoundError:
            raise FileNotFoundError(f"no calibrator at {path} (fit one with `lucerag calibrate`)") from None
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a lucerag calibrator: {exc}") from None
        if model.features != list(FEATURES):
            raise ValueError(f"{path}: fitted on features {model.features}, this lucerag computes "
                             f"{list(FEATURES)}: refit it with `lucerag calibrate`")
        return model

    @classmethod
    def default(cls) -> "Calibrator":
        """The calibrator shipped with lucerag: the mixture model under the default fusion and encoder,
        written by ``lucerag bench transfer --write-calibrator`` (docs/fusion-and-filter.md)."""
        from lucerag.resources import DEFAULT_CALIBRATOR

        return cls.load(DEFAULT_CALIBRATOR)


def _mixture_keep(p: np.ndarray, post: np.ndarray, answerable: bool, head: np.ndarray, t: float) -> np.ndarray:
    """The mixture model's cut: inside an answerable query every candidate with P(relevant |
    answerable) >= ``t``, and always its most probable candidate of the head; nothing otherwise."""
    keep = (post >= t) & answerable
    if answerable:
        keep[int(np.argmax(np.where(head, p, -1.0)))] = True
    return keep


def gate_from_negatives(best_cosines) -> float:
    """The mixture model's answerability gate for one corpus: the second-highest best-passage cosine
    that a set of questions the corpus cannot answer reached on it (the highest when there is only
    one). ``lucerag calibrate --negatives`` searches them on the user's own index: no judgments.

    Not the highest: a packaged list of "unanswerable" questions always holds some that a given
    corpus does answer (a Python-internals question on a corpus about Python lists), and one such
    question alone would set the gate above that corpus's real questions. Leave-one-collection-out
    (docs/fusion-and-filter.md): answerable queries returned empty 0% / 0.33% (DL19 / SciFact-2k)
    against 0% / 2.67% with the highest; written out-of-domain questions refused 100% / 94.2%
    against 100% / 98.1%. Raises ValueError when empty."""
    best = np.sort(np.asarray(list(best_cosines), np.float64))
    if len(best) == 0:
        raise ValueError("the answerability gate needs at least one unanswerable question")
    return round(float(best[-2] if len(best) >= 2 else best[-1]), 4)


def read_questions(path: str | Path) -> list[str]:
    """Questions from a text file, one a line; blank lines and ``#`` comments are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def corpus_gate(retriever, questions: list[str]) -> float:
    """:func:`gate_from_negatives` of ``questions`` (none answerable by the corpus) searched on
    ``retriever``'s index: each one's best cosine within the top ``fusion.depth``. Raises ValueError
    when no question finds any candidate (an empty index)."""
    from lucerag.search.fusion import head

    depth = retriever.config.fusion.depth
    best = []
    for text in questions:
        c, _ = retriever.candidates(text, depth)
        if len(c):
            best.append(float(c.dense[head(c, depth)].max()))
    return gate_from_negatives(best)


def mixture_calibrator(gate: float, **info) -> Calibrator:
    """A calibrator of the ``mixture`` model (nothing fitted on labels; see :class:`Calibrator`)."""
    return Calibrator(model="mixture", gate=gate, threshold=0.5, objective="mixture posterior >= 0.5", **info)


def fit(x: np.ndarray, y: np.ndarray, c: float = 0.1, sample_weight: np.ndarray | None = None) -> dict:
    """Fit the logistic model (scikit-learn, at fitting time only); returns Calibrator fields.

    Raises ImportError naming the extra when scikit-learn is not installed."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise ImportError("fitting a calibrator needs scikit-learn: pip install 'lucerag[eval]'") from exc

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit((x - mean) / scale, y, sample_weight=sample_weight)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0])}
