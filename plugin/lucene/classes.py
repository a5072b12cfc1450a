"""The Java classes lucerag uses, resolved once on the main thread.

Everything that crosses into Java goes through this module, so the JVM start-up order and
the set of classes in use are visible in one place.
"""

from __future__ import annotations

from functools import cached_property

from lucerag.lucene import jvm

CONTENTS = "contents"  # BM25 text, analysed, not stored (Anserini's convention)
RAW = "raw"            # stored source record (JSON), Anserini's convention
ID = "id"              # stored string id plus binary doc values (Anserini sorts ties on it)
VECTOR = "vector"      # KnnFloatVectorField, HNSW graph, DOT_PRODUCT on unit vectors


class _Java:
    """Lazily resolved Java classes (the JVM starts on first use)."""

    def __getattr__(self, name: str):
        path = _CLASSES.get(name)
        if path is None:
            raise AttributeError(name)
        cls = jvm.jclass(path)
        setattr(self, name, cls)
        return cls

    @cached_property
    def analyzer(self):
        """Anserini's default English analyzer (Porter stemming, Lucene stopwords)."""
        return self.DefaultEnglishAnalyzer.newDefaultInstance()


_CLASSES = {
    "File": "java.io.File",
    "ArrayList": "java.util.ArrayList",
    "FSDirectory": "org.apache.lucene.store.FSDirectory",
    "Runtime": "java.lang.Runtime",
    "DirectoryReader": "org.apache.lucene.index.DirectoryReader",
    "IndexWriter": "org.apache.lucene.index.IndexWriter",
    "IndexWriterConfig": "org.apache.lucene.index.IndexWriterConfig",
    "OpenMode": "org.apache.lucene.index.IndexWriterConfig$OpenMode",
    "Term": "org.apache.lucene.index.Term",
    "VectorSimilarityFunction": "org.apache.lucene.index.VectorSimilarityFunction",
    "Document": "org.apache.lucene.document.Document",
    "StringField": "org.apache.lucene.document.StringField",
    "TextField": "org.apache.lucene.document.TextField",
    "StoredField": "org.apache.lucene.document.StoredField",
    "BinaryDocValuesField": "org.apache.lucene.document.BinaryDocValuesField",
    "KnnFloatVectorField": "org.apache.lucene.document.KnnFloatVectorField",
    "FieldStore": "org.apache.lucene.document.Field$Store",
    "BytesRef": "org.apache.lucene.util.BytesRef",
    "IndexSearcher": "org.apache.lucene.search.IndexSearcher",
    "BM25Similarity": "org.apache.lucene.search.similarities.BM25Similarity",
    "KnnFloatVectorQuery": "org.apache.lucene.search.KnnFloatVectorQuery",
    "TermInSetQuery": "org.apache.lucene.search.TermInSetQuery",
    "BooleanQueryBuilder": "org.apache.lucene.search.BooleanQuery$Builder",
    "BooleanClauseOccur": "org.apache.lucene.search.BooleanClause$Occur",
    "DefaultEnglishAnalyzer": "io.anserini.analysis.DefaultEnglishAnalyzer",
    "BagOfWordsQueryGenerator": "io.anserini.search.query.BagOfWordsQueryGenerator",
    "AnalyzerUtils": "io.anserini.analysis.AnalyzerUtils",
    "QueryBuilder": "org.apache.lucene.util.QueryBuilder",
    "Bridge": "lucerag.Bridge",
    "MixtureFit": "lucerag.MixtureFit",
}

java = _Java()
