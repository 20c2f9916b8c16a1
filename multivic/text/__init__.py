"""Text: tokenisation and batching of captions for text encoders."""
