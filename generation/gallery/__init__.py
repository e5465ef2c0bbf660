"""The review gallery, compare and the asset page: read side (queries), views and URLs."""
