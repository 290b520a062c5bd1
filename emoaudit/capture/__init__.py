"""Reading the residual stream: pooled activations of read and generated text."""
