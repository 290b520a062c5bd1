"""Emotion vectors: one direction per emotion and layer, as an object that saves, loads and steers."""

from emoaudit.vectors.emotion_vectors import EmotionVectors, unit_deltas

__all__ = ["EmotionVectors", "unit_deltas"]
