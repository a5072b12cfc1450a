"""The JVM and Lucene: start-up with the Anserini jar (``jvm``), Java class handles and field names (``classes``),
long Java calls a signal can interrupt (``interruptible``)."""
