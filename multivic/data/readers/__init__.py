"""Readers: a data set's files on disk as items, for the data formats to turn into samples."""
