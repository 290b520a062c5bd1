"""What an audit's outputs become elsewhere: a verifiable manifest, and steering vectors for other tools."""
