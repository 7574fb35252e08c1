"""Layer blobs read for what they hold: the walker turns a stream of compressed bytes into a LayerContent."""
