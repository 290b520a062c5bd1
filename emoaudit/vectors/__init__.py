"""Emotion vectors: one direction per emotion and layer, as an object that saves, loads and steers."""

from emoaudit.vectors.emotion_vectors import EmotionVectors, unit_deltas
from emoaudit.vectors.origin import ModelOrigin, VectorsOrigin

__all__ = ["EmotionVectors", "ModelOrigin", "VectorsOrigin", "unit_deltas"]
