"""The success classifier's verdict on one stored episode, as the episode store keeps it (``classifier.json``).

One record, written and read here only: the rollout that scores its episodes (``rollout --classifier``) writes it,
curation reuses it instead of scoring again when the same classifier version made it, and the run summary and the
review page read it. Keeping the classifier's version in the record is what makes reuse safe: a verdict by another
classifier is never taken for this one's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError


@dataclass(frozen=True)
class Verdict:
    classifier: str
    """The version (content hash) of the classifier artifact that scored the episode."""
    score: float
    """The episode's success probability under the classifier's episode rule."""
    threshold: float
    """The classifier's calibrated threshold when it scored: ``success`` is ``score >= threshold``."""

    @property
    def success(self) -> bool:
        return self.score >= self.threshold

    def to_json(self) -> str:
        """The file's text; ``success`` is written too, for people and tools reading the file alone."""
        return json.dumps({"classifier": self.classifier, "score": self.score, "threshold": self.threshold,
                           "success": self.success}, indent=2)

    @classmethod
    def from_record(cls, record: object, path: Path, fix: str) -> "Verdict":
        """A verdict from ``classifier.json``'s parsed content: a record of the wrong shape or types is damage,
        reported as one error line naming the file and ``fix``."""
        if not isinstance(record, dict):
            raise DataEngineError(f"{path} is damaged (not a JSON object): {fix}")
        version, score, threshold = record.get("classifier"), record.get("score"), record.get("threshold")
        numbers = [v for v in (score, threshold) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not isinstance(version, str) or len(numbers) != 2 or not all(math.isfinite(v) for v in numbers):
            raise DataEngineError(f"{path} is damaged (it needs a string 'classifier' and finite numbers 'score' and "
                                  f"'threshold'): {fix}")
        return cls(version, float(score), float(threshold))
