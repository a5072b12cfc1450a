package lucerag;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.lucene.document.BinaryDocValuesField;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.DoublePoint;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.KnnFloatVectorField;
import org.apache.lucene.document.StoredField;
import org.apache.lucene.document.StringField;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.PostingsEnum;
import org.apache.lucene.index.Term;
import org.apache.lucene.index.Terms;
import org.apache.lucene.index.TermsEnum;
import org.apache.lucene.index.VectorSimilarityFunction;
import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.util.Bits;
import org.apache.lucene.util.BytesRef;

/**
 * Writes batches of passages into one Lucene {@link IndexWriter} on background threads, so that
 * Python can read, chunk and encode the next batch while Lucene analyses and indexes this one.
 *
 * <p>Per passage: {@code id} (StringField, stored, plus binary doc values), {@code parent_id}
 * (StringField, indexed: the document the passage was cut from), {@code contents} (title + text,
 * analysed), {@code raw} (stored JSON {@code {"id","contents","title"?,"metadata"?}}) and, when
 * vectors are given, {@code vector} (KnnFloatVectorField, DOT_PRODUCT).
 *
 * <p>Metadata filter fields (prepared in Python, lucerag.index.metadata): {@code meta.<key>}
 * (StringField, not stored: strings and booleans), {@code meta_num.<key>} (DoublePoint: numbers, and
 * dates as epoch seconds) and {@code meta_exists} (StringField: every key the passage has).
 *
 * <p>With {@code upsert}, the passages of one parent (consecutive in a batch) replace every passage
 * that parent had, in one {@code updateDocuments} call: a changed document loses all of its old
 * chunks in both views. Each parent must therefore arrive whole, in one batch.
 *
 * <p>Nothing here commits: {@link #commit} does, once, at the end. A crash before it leaves the
 * last commit (the previous index) as it was.
 */
public final class PassageWriter {
  public static final String ID = "id";
  public static final String PARENT = "parent_id";
  public static final String CONTENTS = "contents";
  public static final String RAW = "raw";
  public static final String META = "meta.";
  public static final String META_NUM = "meta_num.";
  public static final String META_EXISTS = "meta_exists";

  private static final Object[] STOP = new Object[0];

  private final IndexWriter writer;
  private final String vectorField;
  private final int dim;
  private final boolean upsert;
  private final BlockingQueue<Object[]> queue;
  private final Thread[] workers;
  private final AtomicReference<Throwable> error = new AtomicReference<>();
  private final AtomicLong written = new AtomicLong();
  private final AtomicLong pending = new AtomicLong();
  private final Set<String> seenParents;
  private volatile boolean finished;

  /**
   * @param threads background indexing threads; 0 indexes in the calling thread
   * @param queued batches that may wait for a thread before {@link #submit} blocks
   * @param trackParents remember every parent written (needed by {@link #deleteMissing})
   */
  public PassageWriter(IndexWriter writer, String vectorField, int dim, boolean upsert, int threads,
                       int queued, boolean trackParents) {
    this.writer = writer;
    this.vectorField = vectorField;
    this.dim = dim;
    this.upsert = upsert;
    this.seenParents = trackParents ? java.util.Collections.synchronizedSet(new HashSet<>()) : null;
    this.queue = new ArrayBlockingQueue<>(Math.max(1, queued));
    this.workers = new Thread[Math.max(0, threads)];
    for (int i = 0; i < workers.length; i++) {
      workers[i] = new Thread(this::work, "lucerag-writer-" + i);
      workers[i].setDaemon(true);
      workers[i].start();
    }
  }

  /**
   * Queues one batch (or writes it now without threads). {@code parents[i]} null means the
   * passage is its own parent; {@code titles[i]} and {@code metadata[i]} (a JSON object) may be
   * null or empty; {@code vectors} holds n * dim little-endian floats or is empty.
   */
  public void submit(String[] ids, String[] parents, String[] texts, String[] titles, String[] metadata,
                     byte[] vectors) throws Exception {
    submit(ids, parents, texts, titles, metadata, vectors, null);
  }

  /**
   * As above, with each passage's metadata filter fields: {@code fields[i]} holds entries separated
   * by U+001E, each {@code kind U+001F key U+001F value} with kind {@code s} (a keyword), {@code n}
   * (a number, Java's Double.parseDouble syntax) or {@code e} (the key exists; no value).
   */
  public void submit(String[] ids, String[] parents, String[] texts, String[] titles, String[] metadata,
                     byte[] vectors, String[] fields) throws Exception {
    rethrow();
    if (finished) {
      throw new IllegalStateException("the writer is finished");
    }
    int n = ids.length;
    if (parents.length != n || texts.length != n || titles.length != n || metadata.length != n
        || (fields != null && fields.length != n)) {
      throw new IllegalArgumentException("ids, parents, texts, titles, metadata and fields differ in length");
    }
    if (vectors.length > 0 && vectors.length != n * dim * 4) {
      throw new IllegalArgumentException("expected " + n * dim + " floats, got " + vectors.length / 4);
    }
    Object[] batch = {ids, parents, texts, titles, metadata, vectors, fields};
    if (workers.length == 0) {
      write(batch);
      return;
    }
    pending.incrementAndGet();
    while (!queue.offer(batch, 100, TimeUnit.MILLISECONDS)) {
      try {
        rethrow();
      } catch (Exception e) {
        pending.decrementAndGet();
        throw e;
      }
    }
  }

  /** Waits until every batch submitted so far is written (more may be submitted afterwards). */
  public void flush() throws Exception {
    while (pending.get() > 0 && error.get() == null) {
      Thread.sleep(1);
    }
    rethrow();
  }

  /** Waits until every queued batch is written; rethrows the first failure. Returns passages written. */
  public long finish() throws Exception {
    if (!finished) {
      finished = true;
      for (int i = 0; i < workers.length; i++) {
        while (!queue.offer(STOP, 100, TimeUnit.MILLISECONDS)) {
          if (error.get() != null) {
            break;
          }
        }
      }
      for (Thread t : workers) {
        t.join();
      }
    }
    rethrow();
    return written.get();
  }

  /** Stops the threads without writing what is still queued (before a rollback). */
  public void abort() throws InterruptedException {
    finished = true;
    error.compareAndSet(null, new IllegalStateException("aborted"));
    queue.clear();
    for (Thread t : workers) {
      t.interrupt();
    }
    for (Thread t : workers) {
      t.join(10_000);
    }
  }

  public long written() {
    return written.get();
  }

  /**
   * After {@link #finish}: deletes every passage whose parent was not written in this session
   * (documents that vanished from the source). Returns the number of parents deleted.
   */
  public int deleteMissing() throws IOException {
    if (seenParents == null) {
      throw new IllegalStateException("deleteMissing needs trackParents");
    }
    List<Term> gone = new ArrayList<>();
    Set<String> found = new HashSet<>();
    try (DirectoryReader reader = DirectoryReader.open(writer)) {
      for (LeafReaderContext leaf : reader.leaves()) {
        Terms terms = leaf.reader().terms(PARENT);
        if (terms == null) {
          continue;
        }
        Bits live = leaf.reader().getLiveDocs();
        TermsEnum it = terms.iterator();
        PostingsEnum postings = null;
        for (BytesRef term = it.next(); term != null; term = it.next()) {
          String parent = term.utf8ToString();
          if (seenParents.contains(parent) || found.contains(parent)) {
            continue;
          }
          postings = it.postings(postings, PostingsEnum.NONE);
          boolean alive = false;
          for (int d = postings.nextDoc(); d != DocIdSetIterator.NO_MORE_DOCS; d = postings.nextDoc()) {
            if (live == null || live.get(d)) {
              alive = true;
              break;
            }
          }
          if (alive) {
            found.add(parent);
            gone.add(new Term(PARENT, parent));
          }
        }
      }
    }
    for (int i = 0; i < gone.size(); i += 1024) {
      writer.deleteDocuments(gone.subList(i, Math.min(gone.size(), i + 1024)).toArray(new Term[0]));
    }
    return gone.size();
  }

  /** Commits everything with {@code key -> value} pairs as commit user data (e.g. the manifest). */
  public void commit(String[] keys, String[] values) throws IOException {
    Map<String, String> data = new HashMap<>();
    for (int i = 0; i < keys.length; i++) {
      data.put(keys[i], values[i]);
    }
    writer.setLiveCommitData(data.entrySet());
    writer.commit();
  }

  private void work() {
    try {
      while (true) {
        Object[] batch = queue.take();
        if (batch == STOP || error.get() != null) {
          return;
        }
        try {
          write(batch);
        } finally {
          pending.decrementAndGet();
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Throwable t) {
      error.compareAndSet(null, t);
      queue.clear();
    }
  }

  private void rethrow() throws Exception {
    Throwable t = error.get();
    if (t instanceof Exception) {
      throw (Exception) t;
    }
    if (t != null) {
      throw new RuntimeException(t);
    }
  }

  private void write(Object[] batch) throws IOException {
    String[] ids = (String[]) batch[0];
    String[] parents = (String[]) batch[1];
    String[] texts = (String[]) batch[2];
    String[] titles = (String[]) batch[3];
    String[] metadata = (String[]) batch[4];
    byte[] vectors = (byte[]) batch[5];
    String[] fields = (String[]) batch[6];
    FloatBuffer floats = ByteBuffer.wrap(vectors).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    boolean withVectors = vectors.length > 0;
    List<Document> block = new ArrayList<>();
    StringBuilder json = new StringBuilder(1024);
    int n = ids.length;
    for (int i = 0; i < n; i++) {
      String parent = parents[i] == null ? ids[i] : parents[i];
      String title = titles[i] == null ? "" : titles[i];
      Document doc = new Document();
      doc.add(new StringField(ID, ids[i], Field.Store.YES));
      doc.add(new BinaryDocValuesField(ID, new BytesRef(ids[i])));
      doc.add(new StringField(PARENT, parent, Field.Store.NO));
      doc.add(new TextField(CONTENTS, title.isEmpty() ? texts[i] : title + "\n" + texts[i], Field.Store.NO));
      doc.add(new StoredField(RAW, raw(json, ids[i], texts[i], title, metadata[i])));
      if (fields != null && fields[i] != null && !fields[i].isEmpty()) {
        addFields(doc, fields[i]);
      }
      if (withVectors) {
        float[] v = new float[dim];
        floats.get(v);
        doc.add(new KnnFloatVectorField(vectorField, v, VectorSimilarityFunction.DOT_PRODUCT));
      }
      if (seenParents != null) {
        seenParents.add(parent);
      }
      if (!upsert) {
        writer.addDocument(doc);
        continue;
      }
      block.add(doc);
      String next = i + 1 < n ? (parents[i + 1] == null ? ids[i + 1] : parents[i + 1]) : null;
      if (!parent.equals(next)) {
        writer.updateDocuments(new Term(PARENT, parent), block);
        block = new ArrayList<>();
      }
    }
    written.addAndGet(n);
  }

  /** Adds the metadata filter fields encoded in {@code spec} (see {@link #submit}). */
  static void addFields(Document doc, String spec) {
    int start = 0, n = spec.length();
    while (start < n) {
      int end = spec.indexOf('\u001e', start);
      if (end < 0) {
        end = n;
      }
      char kind = spec.charAt(start);
      int sep = spec.indexOf('\u001f', start + 2);
      String key = spec.substring(start + 2, sep < 0 || sep > end ? end : sep);
      String value = sep < 0 || sep > end ? "" : spec.substring(sep + 1, end);
      switch (kind) {
        case 's': doc.add(new StringField(META + key, value, Field.Store.NO)); break;
        case 'n': doc.add(new DoublePoint(META_NUM + key, Double.parseDouble(value))); break;
        case 'e': doc.add(new StringField(META_EXISTS, key, Field.Store.NO)); break;
        default: throw new IllegalArgumentException("unknown metadata field kind " + kind);
      }
      start = end + 1;
    }
  }

  /** The stored record, JSON in the shape of Anserini's JsonCollection (plus title and metadata). */
  static String raw(StringBuilder out, String id, String text, String title, String metadata) {
    out.setLength(0);
    out.append("{\"id\": ");
    quote(out, id);
    out.append(", \"contents\": ");
    quote(out, text);
    if (!title.isEmpty()) {
      out.append(", \"title\": ");
      quote(out, title);
    }
    if (metadata != null && !metadata.isEmpty() && !metadata.equals("{}")) {
      out.append(", \"metadata\": ").append(metadata);
    }
    return out.append('}').toString();
  }

  /** Appends {@code s} as a JSON string (non-ASCII kept as is, like json.dumps(ensure_ascii=False)). */
  static void quote(StringBuilder out, String s) {
    out.append('"');
    for (int i = 0, n = s.length(); i < n; i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        case '\b': out.append("\\b"); break;
        case '\f': out.append("\\f"); break;
        default:
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
      }
    }
    out.append('"');
  }
}
