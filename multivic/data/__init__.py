"""Data: file readers (images, audio, COCO captions) and the built-in generated data sets.

The modalities (views, collate) live in :mod:`multivic.modalities`, the data formats that
turn these readers into samples in :mod:`multivic.formats`.
"""
