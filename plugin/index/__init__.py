"""One Lucene index with both views: writing (``writer``), opening and reading (``reader``), ``lucerag.json`` (``manifest``)."""
