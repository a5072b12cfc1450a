package lucerag;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.List;

import io.anserini.search.query.BagOfWordsQueryGenerator;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.codecs.Codec;
import org.apache.lucene.codecs.FilterCodec;
import org.apache.lucene.codecs.KnnVectorsFormat;
import org.apache.lucene.codecs.lucene104.Lucene104HnswScalarQuantizedVectorsFormat;
import org.apache.lucene.codecs.lucene99.Lucene99HnswVectorsFormat;
import org.apache.lucene.codecs.perfield.PerFieldKnnVectorsFormat;
import org.apache.lucene.document.BinaryDocValuesField;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.DocumentStoredFieldVisitor;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.KnnFloatVectorField;
import org.apache.lucene.document.StoredField;
import org.apache.lucene.document.StringField;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.BinaryDocValues;
import org.apache.lucene.index.CodecReader;
import org.apache.lucene.index.DocValuesType;
import org.apache.lucene.index.FloatVectorValues;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.KnnVectorValues;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.PostingsEnum;
import org.apache.lucene.index.ReaderUtil;
import org.apache.lucene.index.Terms;
import org.apache.lucene.index.TermsEnum;
import org.apache.lucene.index.SortedDocValues;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.index.Term;
import org.apache.lucene.index.VectorSimilarityFunction;
import org.apache.lucene.document.DoublePoint;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.MatchAllDocsQuery;
import org.apache.lucene.search.MatchNoDocsQuery;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.KnnFloatVectorQuery;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.RescoreTopNQuery;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.TermInSetQuery;
import org.apache.lucene.search.TopDocs;
import org.apache.lucene.search.TopScoreDocCollectorManager;
import org.apache.lucene.search.Weight;
import org.apache.lucene.util.BytesRef;
import org.apache.lucene.util.quantization.QuantizedByteVectorValues.ScalarEncoding;

/**
 * Batch operations for lucerag, called through pyjnius.
 *
 * <p>Every call through pyjnius costs microseconds per object and per array element, so these
 * methods move whole batches across the boundary: vectors and doc numbers travel as
 * little-endian byte arrays, one call per batch of passages or per query.
 */
public final class Bridge {
  private static final String ID = "id";
  private static final String CONTENTS = "contents";
  private static final String RAW = "raw";

  private Bridge() {}

  /**
   * The vectors format for one of lucerag's index options: {@code "float"} (HNSW over float32
   * vectors), {@code "int8"} (HNSW over 8-bit scalar-quantised vectors) or {@code "bbq"} (HNSW over
   * 1-bit vectors, queried with 4-bit queries). Both quantised formats keep the float vectors beside
   * the quantised ones, so candidates can be rescored exactly ({@link #rescoredKnnQuery}).
   *
   * <p>Lucene 10.5 writes quantised vectors only with its 10.4 format; the older
   * Lucene99HnswScalarQuantizedVectorsFormat and Lucene102HnswBinaryQuantizedVectorsFormat moved to
   * backward-codecs and are read-only there.
   */
  public static KnnVectorsFormat vectorsFormat(String name, int maxConn, int beamWidth) {
    return vectorsFormat(name, maxConn, beamWidth, Lucene99HnswVectorsFormat.HNSW_GRAPH_THRESHOLD, 1);
  }

  /** {@link #vectorsFormat(String, int, int, int, int)} with one graph-building thread per merge. */
  public static KnnVectorsFormat vectorsFormat(
      String name, int maxConn, int beamWidth, int graphThreshold) {
    return vectorsFormat(name, maxConn, beamWidth, graphThreshold, 1);
  }

  /**
   * {@link #vectorsFormat(String, int, int)} with Lucene's tiny-segment threshold {@code
   * graphThreshold}: a segment of {@code n} vectors gets an HNSW graph only when {@code n >
   * ln(n) * graphThreshold}; a segment without one is searched exhaustively (every vector scored
   * with the format's SIMD scorer: int8 dot products for "int8"). Lucene's default is 100 (graphs
   * from 648 vectors); 0 always builds one; {@link #NO_GRAPH} never does. Readers need no setting:
   * the choice is per segment.
   *
   * <p>{@code mergeWorkers} threads build the graph of a merged segment together (Lucene's
   * concurrent HNSW merge, on {@link #mergePool}); 1 builds it on the merging thread alone. A graph
   * built while documents are added (at flush) always uses the indexing thread alone.
   */
  public static KnnVectorsFormat vectorsFormat(
      String name, int maxConn, int beamWidth, int graphThreshold, int mergeWorkers) {
    int workers = Math.max(1, mergeWorkers);
    java.util.concurrent.ExecutorService pool = workers > 1 ? mergePool() : null;
    switch (name) {
      case "float":
        return new Lucene99HnswVectorsFormat(maxConn, beamWidth, workers, pool, graphThreshold);
      case "int8":
        return new Lucene104HnswScalarQuantizedVectorsFormat(
            ScalarEncoding.UNSIGNED_BYTE, maxConn, beamWidth, workers, pool, graphThreshold);
      case "bbq":
        return new Lucene104HnswScalarQuantizedVectorsFormat(
            ScalarEncoding.SINGLE_BIT_QUERY_NIBBLE, maxConn, beamWidth, workers, pool, graphThreshold);
      default:
        throw new IllegalArgumentException("unknown vector format " + name + " (float, int8 or bbq)");
    }
  }

  /**
   * Merges the segments of the index in {@code source} into new segments of a fresh index in {@code
   * target}, written with {@code codec} (their vectors get the codec's HNSW graphs, built by the
   * codec's merge workers), and commits it with the source's commit data. Consecutive segments are
   * merged together while they hold at most {@code maxDocs} documents in all (a larger segment alone),
   * so documents keep their order. Returns the number of segments written. Lucene's forceMerge
   * would leave a build that is one segment already as it is.
   */
  public static int mergeInto(
      org.apache.lucene.store.Directory source,
      org.apache.lucene.store.Directory target,
      Codec codec,
      long maxDocs)
      throws java.io.IOException {
    try (org.apache.lucene.index.DirectoryReader reader =
        org.apache.lucene.index.DirectoryReader.open(source)) {
      org.apache.lucene.index.IndexWriterConfig config =
          new org.apache.lucene.index.IndexWriterConfig()
              .setOpenMode(org.apache.lucene.index.IndexWriterConfig.OpenMode.CREATE)
              .setCodec(codec)
              // each addIndexes call below is one segment of at most maxDocs: no merge may join
              // them again (a tiered merge did once ten were there, building a graph beyond the heap)
              .setMergePolicy(org.apache.lucene.index.NoMergePolicy.INSTANCE)
              .setCommitOnClose(false);
      try (IndexWriter writer = new IndexWriter(target, config)) {
        List<CodecReader> group = new ArrayList<>();
        long docs = 0;
        int groups = 0;
        for (LeafReaderContext ctx : reader.leaves()) {
          int n = ctx.reader().maxDoc();
          if (!group.isEmpty() && docs + n > maxDocs) {
            writer.addIndexes(group.toArray(new CodecReader[0]));
            groups++;
            group.clear();
            docs = 0;
          }
          group.add(org.apache.lucene.index.SlowCodecReaderWrapper.wrap(ctx.reader()));
          docs += n;
        }
        if (!group.isEmpty()) {
          writer.addIndexes(group.toArray(new CodecReader[0]));
          groups++;
        }
        writer.setLiveCommitData(reader.getIndexCommit().getUserData().entrySet());
        writer.commit();
        return groups;
      }
    }
  }

  /** A tiny-segment threshold under which no segment of any size gets a graph. */
  public static final int NO_GRAPH = Integer.MAX_VALUE;

  private static java.util.concurrent.ExecutorService mergePool;

  /**
   * The threads that build merged HNSW graphs: created on first use, grown on demand, idle ones
   * retired after 30 s; daemon threads, so they never keep the JVM alive.
   */
  static synchronized java.util.concurrent.ExecutorService mergePool() {
    if (mergePool == null) {
      java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
      mergePool = new java.util.concurrent.ThreadPoolExecutor(
          0, Integer.MAX_VALUE, 30L, java.util.concurrent.TimeUnit.SECONDS,
          new java.util.concurrent.SynchronousQueue<>(),
          r -> {
            Thread t = new Thread(r, "lucerag-hnsw-merge-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
          });
    }
    return mergePool;
  }

  /**
   * The running Lucene's default codec with {@code format}'s HNSW settings for every vector field.
   * It keeps the default codec's name and writes the vectors format per field, so a reader finds
   * everything by name and needs no lucerag class: this works on any Lucene version without naming
   * a versioned codec.
   */
  public static Codec codec(String format, int maxConn, int beamWidth) {
    return codec(format, maxConn, beamWidth, Lucene99HnswVectorsFormat.HNSW_GRAPH_THRESHOLD);
  }

  /** {@link #codec(String, int, int)} with a tiny-segment threshold (see {@link #vectorsFormat}). */
  public static Codec codec(String format, int maxConn, int beamWidth, int graphThreshold) {
    return codec(format, maxConn, beamWidth, graphThreshold, 1);
  }

  /**
   * {@link #codec(String, int, int)} with a tiny-segment threshold and graph-building threads per
   * merge (see {@link #vectorsFormat(String, int, int, int, int)}).
   */
  public static Codec codec(
      String format, int maxConn, int beamWidth, int graphThreshold, int mergeWorkers) {
    KnnVectorsFormat vectors = vectorsFormat(format, maxConn, beamWidth, graphThreshold, mergeWorkers);
    Codec base = Codec.getDefault();
    KnnVectorsFormat perField = new PerFieldKnnVectorsFormat() {
      @Override
      public KnnVectorsFormat getKnnVectorsFormatForField(String field) {
        return vectors;
      }
    };
    return new FilterCodec(base.getName(), base) {
      @Override
      public KnnVectorsFormat knnVectorsFormat() {
        return perField;
      }
    };
  }

  /**
   * The simple class name of the vectorization provider Lucene chose in this JVM: {@code
   * "PanamaVectorizationProvider"} when it computes vector distances with SIMD instructions (the
   * runtime has the {@code jdk.incubator.vector} module and is a Java version Lucene supports),
   * {@code "DefaultVectorizationProvider"} for its scalar code. Read by reflection: Lucene's
   * getInstance() accepts only Lucene callers. Returns "unknown" when the field cannot be read.
   */
  public static String vectorizationProvider() {
    try {
      Class<?> holder =
          Class.forName("org.apache.lucene.internal.vectorization.VectorizationProvider$Holder");
      java.lang.reflect.Field field = holder.getDeclaredField("INSTANCE");
      field.setAccessible(true);
      return field.get(null).getClass().getSimpleName();
    } catch (ReflectiveOperationException | RuntimeException e) {
      return "unknown";
    }
  }

  /** {@link #codec} with float HNSW vectors (kept for callers of the Lucene 9 bridge). */
  public static Codec hnswCodec(int maxConn, int beamWidth) {
    return codec("float", maxConn, beamWidth);
  }

  /** The running Lucene's version, e.g. {@code "10.5.0"}. */
  public static String luceneVersion() {
    return org.apache.lucene.util.Version.LATEST.toString();
  }

  private static int[] ints(byte[] littleEndian) {
    int[] out = new int[littleEndian.length / 4];
    le(littleEndian).asIntBuffer().get(out);
    return out;
  }

  /** Positions of {@code docs} in ascending doc order (readers advance forward only). */
  private static Integer[] ascending(int[] docs) {
    Integer[] order = new Integer[docs.length];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    Arrays.sort(order, (a, b) -> Integer.compare(docs[a], docs[b]));
    return order;
  }

  private static ByteBuffer le(byte[] bytes) {
    return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
  }

  /**
   * Adds (or, with upsert, replaces by id) a batch of passages. {@code vectors} holds
   * ids.length * dim little-endian floats, or is empty for a BM25-only index.
   */
  public static void addPassages(IndexWriter writer, String[] ids, String[] contents, String[] raws,
                                 byte[] vectors, int dim, String vectorField, boolean upsert)
      throws java.io.IOException {
    FloatBuffer floats = le(vectors).asFloatBuffer();
    boolean withVectors = vectors.length > 0;
    if (withVectors && floats.remaining() != ids.length * dim) {
      throw new IllegalArgumentException("expected " + ids.length * dim + " floats, got " + floats.remaining());
    }
    for (int i = 0; i < ids.length; i++) {
      Document doc = new Document();
      doc.add(new StringField(ID, ids[i], Field.Store.YES));
      doc.add(new BinaryDocValuesField(ID, new BytesRef(ids[i])));
      doc.add(new StringField(PassageWriter.PARENT, ids[i], Field.Store.NO));
      doc.add(new TextField(CONTENTS, contents[i], Field.Store.NO));
      doc.add(new StoredField(RAW, raws[i]));
      if (withVectors) {
        float[] v = new float[dim];
        floats.get(v);
        doc.add(new KnnFloatVectorField(vectorField, v, VectorSimilarityFunction.DOT_PRODUCT));
      }
      if (upsert) {
        writer.updateDocument(new Term(ID, ids[i]), doc);
      } else {
        writer.addDocument(doc);
      }
    }
  }

  /** Deletes passages by id. */
  public static void deleteIds(IndexWriter writer, String[] ids) throws java.io.IOException {
    Term[] terms = new Term[ids.length];
    for (int i = 0; i < ids.length; i++) {
      terms[i] = new Term(ID, ids[i]);
    }
    writer.deleteDocuments(terms);
  }

  /** Deletes every passage of the given parent documents (all their chunks, both views). */
  public static void deleteParents(IndexWriter writer, String[] parents) throws java.io.IOException {
    Term[] terms = new Term[parents.length];
    for (int i = 0; i < parents.length; i++) {
      terms[i] = new Term(PassageWriter.PARENT, parents[i]);
    }
    writer.deleteDocuments(terms);
  }

  /**
   * The top {@code k} hits of {@code query}, counting total hits only up to {@code k}: past that
   * count Lucene may skip blocks of documents that cannot enter the top k (block-max WAND), where
   * {@code IndexSearcher.search(query, k)} counts the first 1,000 hits exactly before it skips any.
   * The hits and their order are the same; only {@code totalHits} becomes a lower bound.
   */
  private static TopDocs top(IndexSearcher searcher, Query query, int k) throws java.io.IOException {
    int n = Math.max(1, Math.min(k, Math.max(1, searcher.getIndexReader().maxDoc())));
    return searcher.search(query, new TopScoreDocCollectorManager(n, n));
  }

  /** Top k hits packed as n little-endian ints (doc numbers) followed by n floats (scores). */
  public static byte[] search(IndexSearcher searcher, Query query, int k) throws java.io.IOException {
    TopDocs top = top(searcher, query, k);
    ScoreDoc[] hits = top.scoreDocs;
    ByteBuffer out = ByteBuffer.allocate(hits.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    for (ScoreDoc hit : hits) {
      out.putInt(hit.doc);
    }
    for (ScoreDoc hit : hits) {
      out.putFloat(hit.score);
    }
    return out.array();
  }

  /**
   * Scores of {@code query} for the given doc numbers (little-endian ints of one top-level reader),
   * in the given order, as little-endian floats; a document the query does not match scores 0.
   * Each document is reached by advancing the query's scorer to it, so the cost grows with the
   * number of documents asked for, not with the length of the query's posting lists.
   */
  public static byte[] scoreDocs(IndexSearcher searcher, Query query, byte[] docnums) throws java.io.IOException {
    float[] scores = exactScores(searcher, query, ints(docnums));
    ByteBuffer out = ByteBuffer.allocate(scores.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : scores) {
      out.putFloat(f);
    }
    return out.array();
  }

  private static float[] exactScores(IndexSearcher searcher, Query query, int[] docs) throws java.io.IOException {
    float[] scores = new float[docs.length];
    if (docs.length == 0) {
      return scores;
    }
    Weight weight = searcher.createWeight(searcher.rewrite(query), ScoreMode.COMPLETE, 1f);
    List<LeafReaderContext> leaves = searcher.getIndexReader().leaves();
    int leaf = -1;
    Scorer scorer = null;
    LeafReaderContext ctx = null;
    for (int i : ascending(docs)) {
      int doc = docs[i];
      while (ctx == null || doc >= ctx.docBase + ctx.reader().maxDoc()) {
        ctx = leaves.get(++leaf);
        scorer = weight.scorer(ctx);
      }
      if (scorer == null) {
        continue;
      }
      int target = doc - ctx.docBase;
      int at = scorer.docID();
      if (at < target) {
        at = scorer.iterator().advance(target);
      }
      if (at == target) {
        scores[i] = scorer.score();
      }
    }
    return scores;
  }

  /**
   * The BM25 side of one hybrid query in a single call: {@code text} analysed into Anserini's
   * bag-of-words query over {@code field}; its top {@code k} among the matches of {@code filter}
   * (null: every document), as {@link #search}; and the exact score of each doc number in
   * {@code also} (little-endian ints, e.g. the dense view's hits), as {@link #scoreDocs} (0: no
   * query term occurs in it); and the lexical evidence of the relevance filter (see
   * {@link #holdsEveryTerm}). Packed little-endian: int n, n doc numbers, n scores, one float per doc
   * number of {@code also}, then an int: 1 when a hit tied with the first holds every query term.
   */
  public static byte[] bm25Hits(IndexSearcher searcher, BagOfWordsQueryGenerator generator, Analyzer analyzer,
                                String field, String text, Query filter, int k, byte[] also)
      throws java.io.IOException {
    Query query = generator.buildQuery(field, analyzer, text);
    ScoreDoc[] hits = top(searcher, filter == null ? query : filtered(query, filter), k).scoreDocs;
    float[] extra = exactScores(searcher, query, ints(also));
    boolean covered = holdsEveryTerm(searcher, query, field, hits);
    ByteBuffer out = ByteBuffer.allocate(8 + hits.length * 8 + extra.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    out.putInt(hits.length);
    for (ScoreDoc hit : hits) {
      out.putInt(hit.doc);
    }
    for (ScoreDoc hit : hits) {
      out.putFloat(hit.score);
    }
    for (float f : extra) {
      out.putFloat(f);
    }
    out.putInt(covered ? 1 : 0);
    return out.array();
  }

  /** Scores within this relative distance of the first hit's are tied with it (float sums of the
   * same term scores, added in another order). */
  private static final float TIED = 1e-5f;

  /**
   * Whether a hit tied for first ({@code hits} best first, as the search ranked them; tied: within
   * {@link #TIED} of the first score) holds every term of {@code query} in {@code field}: the
   * lexical evidence of lucerag.search.lexical, read from the postings of those hits alone. The hits
   * were already restricted to a metadata filter, so the evidence is too. False with no hit or no term.
   */
  static boolean holdsEveryTerm(IndexSearcher searcher, Query query, String field, ScoreDoc[] hits)
      throws java.io.IOException {
    if (hits.length == 0) {
      return false;
    }
    Set<Term> terms = new HashSet<>();
    query.visit(QueryVisitor.termCollector(terms));
    if (terms.isEmpty()) {
      return false;
    }
    List<LeafReaderContext> leaves = searcher.getIndexReader().leaves();
    float first = hits[0].score;
    for (ScoreDoc hit : hits) {
      if (!(hit.score >= first * (1f - TIED))) {
        return false;
      }
      LeafReaderContext ctx = leaves.get(ReaderUtil.subIndex(hit.doc, leaves));
      Terms indexed = ctx.reader().terms(field);
      if (indexed == null) {
        continue;
      }
      int doc = hit.doc - ctx.docBase;
      boolean all = true;
      TermsEnum te = indexed.iterator();
      for (Term term : terms) {
        if (!term.field().equals(field) || !te.seekExact(term.bytes())) {
          all = false;
          break;
        }
        PostingsEnum postings = te.postings(null, PostingsEnum.NONE);
        if (postings.advance(doc) != doc) {
          all = false;
          break;
        }
      }
      if (all) {
        return true;
      }
    }
    return false;
  }

  /** {@code query} restricted to the matches of {@code filter} (a FILTER clause: it does not score). */
  public static Query filtered(Query query, Query filter) {
    if (filter == null) {
      return query;
    }
    return new BooleanQuery.Builder().add(query, BooleanClause.Occur.MUST)
        .add(filter, BooleanClause.Occur.FILTER).build();
  }

  // -- metadata filters (built by lucerag.search.filters; one call per node, no overloads) --

  /** Passages whose keyword field holds any of {@code values}. */
  public static Query keywordQuery(String field, String[] values) {
    if (values.length == 1) {
      return new TermQuery(new Term(field, values[0]));
    }
    List<BytesRef> terms = new ArrayList<>(values.length);
    for (String v : values) {
      terms.add(new BytesRef(v));
    }
    return new TermInSetQuery(field, terms);
  }

  /** Passages whose numeric field holds a value in [lo, hi] (inclusive; use Math.nextUp for exclusive). */
  public static Query numberRange(String field, double lo, double hi) {
    return DoublePoint.newRangeQuery(field, lo, hi);
  }

  /** Passages whose numeric field holds any of the given values (little-endian doubles). */
  public static Query numberSet(String field, byte[] values) {
    double[] v = new double[values.length / 8];
    le(values).asDoubleBuffer().get(v);
    return DoublePoint.newSetQuery(field, v);
  }

  /**
   * All of {@code all}, at least one of {@code any} (when given), none of {@code none}; as pure
   * filter clauses (constant score). Only negative clauses: every passage but those.
   */
  public static Query booleanQuery(Query[] all, Query[] any, Query[] none) {
    BooleanQuery.Builder b = new BooleanQuery.Builder();
    for (Query q : all) {
      b.add(q, BooleanClause.Occur.FILTER);
    }
    if (any.length > 0) {
      BooleanQuery.Builder or = new BooleanQuery.Builder();
      for (Query q : any) {
        or.add(q, BooleanClause.Occur.SHOULD);
      }
      b.add(or.setMinimumNumberShouldMatch(1).build(), BooleanClause.Occur.FILTER);
    }
    for (Query q : none) {
      b.add(q, BooleanClause.Occur.MUST_NOT);
    }
    if (all.length == 0 && any.length == 0) {
      b.add(new MatchAllDocsQuery(), BooleanClause.Occur.FILTER);
    }
    return b.build();
  }

  /** A query no passage matches. */
  public static Query matchNone() {
    return new MatchNoDocsQuery("empty filter");
  }

  /** A query matching exactly the passages with the given ids. */
  public static Query idsQuery(String[] ids) {
    List<BytesRef> terms = new ArrayList<>(ids.length);
    for (String id : ids) {
      terms.add(new BytesRef(id));
    }
    return new TermInSetQuery(ID, terms);
  }

  /**
   * A kNN query from a little-endian float vector; with a filter, restricted to its matches
   * (Lucene then scores them exhaustively when they are fewer than k).
   */
  public static Query knnQuery(String field, byte[] vector, int k, Query filter) {
    float[] v = new float[vector.length / 4];
    le(vector).asFloatBuffer().get(v);
    return filter == null ? new KnnFloatVectorQuery(field, v, k) : new KnnFloatVectorQuery(field, v, k, filter);
  }

  /**
   * The {@code k} best of {@code candidates} approximate neighbours, rescored exactly with the
   * stored float vectors (for quantised formats, whose HNSW scores are estimates).
   */
  public static Query rescoredKnnQuery(String field, byte[] vector, int candidates, int k, Query filter) {
    float[] v = new float[vector.length / 4];
    le(vector).asFloatBuffer().get(v);
    Query approximate = filter == null ? new KnnFloatVectorQuery(field, v, candidates)
        : new KnnFloatVectorQuery(field, v, candidates, filter);
    return RescoreTopNQuery.createFullPrecisionRescorerQuery(approximate, v, field, k);
  }

  /**
   * External ids of doc numbers (little-endian ints), in the given order. Read from the id field's
   * doc values where a segment has them (binary, as lucerag writes them; sorted, as Anserini does),
   * about a microsecond per document, else from stored fields, which decompress a block of
   * documents for each one asked (tens of microseconds).
   */
  public static String[] ids(IndexReader reader, byte[] docnums) throws java.io.IOException {
    int[] docs = ints(docnums);
    String[] out = new String[docs.length];
    List<LeafReaderContext> leaves = reader.leaves();
    StoredFields stored = null;
    java.util.Set<String> fields = java.util.Set.of(ID);
    int leaf = -1;
    int base = 0;
    int end = 0;
    BinaryDocValues binary = null;
    SortedDocValues sorted = null;
    int last = -1;
    String lastId = null;
    for (int i : ascending(docs)) {
      int doc = docs[i];
      if (doc == last) {
        out[i] = lastId;
        continue;
      }
      while (doc >= end) {
        LeafReaderContext ctx = leaves.get(++leaf);
        base = ctx.docBase;
        end = base + ctx.reader().maxDoc();
        org.apache.lucene.index.FieldInfo info = ctx.reader().getFieldInfos().fieldInfo(ID);
        DocValuesType type = info == null ? DocValuesType.NONE : info.getDocValuesType();
        binary = type == DocValuesType.BINARY ? ctx.reader().getBinaryDocValues(ID) : null;
        sorted = type == DocValuesType.SORTED ? ctx.reader().getSortedDocValues(ID) : null;
      }
      String id = null;
      if (binary != null && binary.advanceExact(doc - base)) {
        id = binary.binaryValue().utf8ToString();
      } else if (sorted != null && sorted.advanceExact(doc - base)) {
        id = sorted.lookupOrd(sorted.ordValue()).utf8ToString();
      } else {
        if (stored == null) {
          stored = reader.storedFields();
        }
        id = stored.document(doc, fields).get(ID);
      }
      out[i] = id;
      last = doc;
      lastId = id;
    }
    return out;
  }

  /**
   * The stored id, {@code raw} record and {@code contents} of every document from {@code from}
   * (inclusive) to {@code to} (exclusive), read in doc order: for each document three fields, each
   * a little-endian int byte length (-1: not stored) followed by that many UTF-8 bytes. Each
   * segment is read through its stored-fields merge instance, which decompresses every block of
   * documents once (random access decompresses a block per document read).
   */
  public static byte[] storedRange(IndexReader reader, int from, int to) throws java.io.IOException {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(Math.max(16, (to - from) * 512));
    byte[] length = new byte[4];
    ByteBuffer lengthLe = ByteBuffer.wrap(length).order(ByteOrder.LITTLE_ENDIAN);
    String[] names = {ID, RAW, CONTENTS};
    for (LeafReaderContext ctx : reader.leaves()) {
      int lo = Math.max(from, ctx.docBase);
      int hi = Math.min(to, ctx.docBase + ctx.reader().maxDoc());
      if (lo >= hi) {
        continue;
      }
      StoredFields fields = ctx.reader() instanceof CodecReader codec
          ? codec.getFieldsReader().getMergeInstance()
          : ctx.reader().storedFields();
      for (int doc = lo; doc < hi; doc++) {
        DocumentStoredFieldVisitor visitor = new DocumentStoredFieldVisitor(ID, RAW, CONTENTS);
        fields.document(doc - ctx.docBase, visitor);
        Document document = visitor.getDocument();
        for (String name : names) {
          String value = document.get(name);
          byte[] bytes = value == null ? null : value.getBytes(java.nio.charset.StandardCharsets.UTF_8);
          lengthLe.putInt(0, bytes == null ? -1 : bytes.length);
          out.write(length, 0, 4);
          if (bytes != null) {
            out.write(bytes, 0, bytes.length);
          }
        }
      }
    }
    return out.toByteArray();
  }

  /**
   * Stored fields of doc numbers (little-endian ints), in the given order, as triples: element 3i is
   * the stored id, 3i+1 the stored {@code raw} record and 3i+2 the stored {@code contents} (null where
   * a field is not stored). One call fetches a whole result page.
   */
  public static String[] records(IndexReader reader, byte[] docnums) throws java.io.IOException {
    java.nio.IntBuffer in = le(docnums).asIntBuffer();
    int n = in.remaining();
    String[] out = new String[3 * n];
    StoredFields stored = reader.storedFields();
    java.util.Set<String> fields = java.util.Set.of(ID, RAW, CONTENTS);
    for (int i = 0; i < n; i++) {
      Document doc = stored.document(in.get(i), fields);
      out[3 * i] = doc.get(ID);
      out[3 * i + 1] = doc.get(RAW);
      out[3 * i + 2] = doc.get(CONTENTS);
    }
    return out;
  }

  /** Stored vectors of doc numbers (little-endian ints), as n * dim little-endian floats. */
  public static byte[] vectors(IndexReader reader, String field, byte[] docnums, int dim)
      throws java.io.IOException {
    int[] docs = ints(docnums);
    Integer[] order = ascending(docs);
    ByteBuffer out = ByteBuffer.allocate(docs.length * dim * 4).order(ByteOrder.LITTLE_ENDIAN);
    List<LeafReaderContext> leaves = reader.leaves();
    int leaf = -1;
    FloatVectorValues values = null;
    KnnVectorValues.DocIndexIterator it = null;
    int base = 0;
    for (int i : order) {
      int doc = docs[i];
      while (leaf + 1 < leaves.size() && leaves.get(leaf + 1).docBase <= doc) {
        leaf++;
        base = leaves.get(leaf).docBase;
        values = leaves.get(leaf).reader().getFloatVectorValues(field);
        it = values == null ? null : values.iterator();
      }
      int local = doc - base;
      int current = it == null ? -1 : it.docID();
      if (it == null || current > local || (current != local && it.advance(local) != local)) {
        throw new IllegalArgumentException("document " + doc + " has no vector in field " + field);
      }
      // Lucene 10 reads vectors by ordinal; the iterator maps the document to its ordinal.
      float[] v = values.vectorValue(it.index());
      out.position(i * dim * 4);
      for (float f : v) {
        out.putFloat(f);
      }
    }
    return out.array();
  }

  /**
   * Live doc numbers (little-endian ints) that are in one view: with {@code vectors}, those with a
   * vector in {@code field}; otherwise those with at least one indexed term in {@code field}
   * (the BM25 view). Used to check that both views hold the same passages.
   */
  public static byte[] viewDocs(IndexReader reader, String field, boolean vectors) throws java.io.IOException {
    org.apache.lucene.util.FixedBitSet all = new org.apache.lucene.util.FixedBitSet(Math.max(1, reader.maxDoc()));
    for (LeafReaderContext ctx : reader.leaves()) {
      org.apache.lucene.util.Bits live = ctx.reader().getLiveDocs();
      if (vectors) {
        FloatVectorValues values = ctx.reader().getFloatVectorValues(field);
        if (values == null) {
          continue;
        }
        KnnVectorValues.DocIndexIterator docsWithVector = values.iterator();
        for (int d = docsWithVector.nextDoc(); d != org.apache.lucene.search.DocIdSetIterator.NO_MORE_DOCS;
             d = docsWithVector.nextDoc()) {
          if (live == null || live.get(d)) {
            all.set(ctx.docBase + d);
          }
        }
      } else {
        org.apache.lucene.index.Terms terms = ctx.reader().terms(field);
        if (terms == null) {
          continue;
        }
        org.apache.lucene.index.TermsEnum it = terms.iterator();
        org.apache.lucene.index.PostingsEnum postings = null;
        while (it.next() != null) {
          postings = it.postings(postings, org.apache.lucene.index.PostingsEnum.NONE);
          for (int d = postings.nextDoc(); d != org.apache.lucene.search.DocIdSetIterator.NO_MORE_DOCS; d = postings.nextDoc()) {
            if (live == null || live.get(d)) {
              all.set(ctx.docBase + d);
            }
          }
        }
      }
    }
    ByteBuffer out = ByteBuffer.allocate(all.cardinality() * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int d = all.nextSetBit(0); d != org.apache.lucene.search.DocIdSetIterator.NO_MORE_DOCS;
         d = d + 1 < all.length() ? all.nextSetBit(d + 1) : org.apache.lucene.search.DocIdSetIterator.NO_MORE_DOCS) {
      out.putInt(d);
    }
    return out.array();
  }

  /**
   * The number of vectors of {@code field} that sit in an HNSW graph, summed over the segments
   * (a segment below the tiny-segment threshold has none and is searched exhaustively), or -1 when
   * a segment's format does not expose its graph.
   */
  public static long graphNodes(IndexReader reader, String field) throws java.io.IOException {
    long nodes = 0;
    for (LeafReaderContext ctx : reader.leaves()) {
      if (!(ctx.reader() instanceof org.apache.lucene.index.CodecReader codecReader)) {
        return -1;
      }
      org.apache.lucene.codecs.KnnVectorsReader vectors = codecReader.getVectorReader();
      if (vectors instanceof PerFieldKnnVectorsFormat.FieldsReader perField) {
        vectors = perField.getFieldReader(field);
      }
      if (vectors == null) {
        continue;
      }
      if (!(vectors instanceof org.apache.lucene.codecs.hnsw.HnswGraphProvider provider)) {
        return -1;
      }
      org.apache.lucene.util.hnsw.HnswGraph graph = provider.getGraph(field);
      nodes += graph == null ? 0 : graph.size();
    }
    return nodes;
  }

  /**
   * Name and settings of the vectors format of {@code field} as the first segment holding it
   * recorded them (e.g. {@code "Lucene99HnswVectorsFormat"}), or null when no segment has one.
   */
  public static String vectorsFormatName(IndexReader reader, String field) {
    for (LeafReaderContext ctx : reader.leaves()) {
      org.apache.lucene.index.FieldInfo info = ctx.reader().getFieldInfos().fieldInfo(field);
      if (info != null && info.getVectorDimension() > 0) {
        return info.getAttribute(PerFieldKnnVectorsFormat.PER_FIELD_FORMAT_KEY);
      }
    }
    return null;
  }

  /** Dimension of the vectors in {@code field}, or 0 when no segment has any. */
  public static int dimension(IndexReader reader, String field) throws java.io.IOException {
    for (LeafReaderContext ctx : reader.leaves()) {
      FloatVectorValues values = ctx.reader().getFloatVectorValues(field);
      if (values != null) {
        return values.dimension();
      }
    }
    return 0;
  }
}
