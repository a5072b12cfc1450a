package lucerag;

import java.io.IOException;
import java.util.Arrays;

import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.search.ConstantScoreScorer;
import org.apache.lucene.search.ConstantScoreWeight;
import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.Weight;

/**
 * Matches a fixed set of Lucene doc numbers of one reader.  Used as a filter to score just
 * the candidates one view missed (exact BM25 or exact vector similarity), without turning
 * doc numbers back into ids.  Valid only for the reader the doc numbers came from.
 */
final class DocSetQuery extends Query {
  private final int[] docs;  // sorted, distinct

  DocSetQuery(int[] docs) {
    this.docs = Arrays.stream(docs).sorted().distinct().toArray();
  }

  @Override
  public Weight createWeight(IndexSearcher searcher, ScoreMode scoreMode, float boost) {
    return new ConstantScoreWeight(this, boost) {
      @Override
      public Scorer scorer(LeafReaderContext context) {
        int base = context.docBase;
        int max = context.reader().maxDoc();
        int from = lowerBound(base);
        int to = lowerBound(base + max);
        if (from == to) {
          return null;
        }
        return new ConstantScoreScorer(this, score(), scoreMode, new Iterator(docs, from, to, base));
      }

      @Override
      public boolean isCacheable(LeafReaderContext ctx) {
        return false;
      }
    };
  }

  private int lowerBound(int doc) {
    int i = Arrays.binarySearch(docs, doc);
    return i >= 0 ? i : -i - 1;
  }

  /** Walks docs[from, to) shifted to leaf-local doc numbers. */
  private static final class Iterator extends DocIdSetIterator {
    private final int[] docs;
    private final int from;
    private final int to;
    private final int base;
    private int i;
    private int doc = -1;

    Iterator(int[] docs, int from, int to, int base) {
      this.docs = docs;
      this.from = from;
      this.to = to;
      this.base = base;
      this.i = from - 1;
    }

    @Override
    public int docID() {
      return doc;
    }

    @Override
    public int nextDoc() {
      i++;
      doc = i < to ? docs[i] - base : NO_MORE_DOCS;
      return doc;
    }

    @Override
    public int advance(int target) {
      while (doc < target) {
        nextDoc();
      }
      return doc;
    }

    @Override
    public long cost() {
      return to - from;
    }
  }

  @Override
  public String toString(String field) {
    return "DocSetQuery(" + docs.length + " docs)";
  }

  @Override
  public void visit(QueryVisitor visitor) {
    visitor.visitLeaf(this);
  }

  @Override
  public boolean equals(Object other) {
    return sameClassAs(other) && Arrays.equals(docs, ((DocSetQuery) other).docs);
  }

  @Override
  public int hashCode() {
    return classHash() * 31 + Arrays.hashCode(docs);
  }
}
