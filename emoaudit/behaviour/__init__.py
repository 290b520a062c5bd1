"""The behaviour stage: what steering toward an emotion does to refusal, sycophancy and hostility toward the user."""
