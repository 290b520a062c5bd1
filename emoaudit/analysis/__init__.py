"""Analysis of activations and vectors: separation per layer, its baselines, held-out scores, the layer sweep."""
