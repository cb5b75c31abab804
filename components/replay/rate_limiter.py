"""Reverb's samples-per-insert contract, checked without blocking.

    error = inserts · samples_per_insert − samples

Learning may sample while ``error`` stays above ``−error_buffer`` (it does not get ahead of the data)
and collectors may insert while it stays below ``+error_buffer`` (they do not flood the learner).
Nothing here waits: the driver asks ``can_sample`` / ``can_insert`` and decides whom to run next, so
the same object serves the one-process runner (which would deadlock on a blocking limiter) and the
Ray runner.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplesPerInsert:
    samples_per_insert: float
    min_size_to_sample: int
    error_buffer: float
    inserts: int = 0
    samples: int = 0

    @property
    def error(self) -> float:
        return (self.inserts - self.min_size_to_sample) * self.samples_per_insert - self.samples

    def can_sample(self, n: int) -> bool:
        return self.inserts >= self.min_size_to_sample and self.error - n >= -self.error_buffer

    def can_insert(self, n: int) -> bool:
        if self.inserts + n <= self.min_size_to_sample:
            return True
        return self.error + n * self.samples_per_insert <= self.error_buffer

    def observed_ratio(self) -> float:
        """Samples per inserted transition so far (after the warm-up)."""
        return self.samples / max(1, self.inserts - self.min_size_to_sample)
