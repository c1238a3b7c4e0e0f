"""Image-level lesion presence implied by an image's labels: absent, present or unknown, per lesion.

A grade says something about every pixel: on the ICDR scale grade 0 means no lesion anywhere, grade 1 means
microaneurysms only; IDRiD's and Messidor's macular edema risk 0 means no hard exudate, 1 and 2 that there are
hard exudates (a partial label, e.g. Messidor-2's risk 0 or 1, implies what both of its risks imply). Stage 2 can
use that where no mask exists (zero pseudo masks for a lesion the labels rule out, a presence term on the
attention). The implications are a table in the config (:class:`PresenceConfig`), so another grading protocol or
another disease changes the table, not the code. Where two labels disagree (e.g. DME 1 on a grade-0 image), the
lesion is ``unknown``: a label error must not become a confident target.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drcollab.config import StrictModel
from drcollab.constants import LESIONS
from drcollab.data.records import Record

Presence = Literal["absent", "present"]
ABSENT, PRESENT, UNKNOWN = 0, 1, -1
_CODE = {"absent": ABSENT, "present": PRESENT}


class PresenceConfig(StrictModel):
    """What each label value implies about each lesion; a lesion a rule does not name stays unknown."""

    dr: dict[int, dict[str, Presence]] = Field(
        default_factory=lambda: {
            0: {"MA": "absent", "HE": "absent", "EX": "absent", "SE": "absent"},  # ICDR 0: no apparent retinopathy
            1: {"MA": "present", "HE": "absent", "EX": "absent", "SE": "absent"},  # ICDR 1: microaneurysms only
        },
        description="ICDR grade -> {lesion: absent | present}; applies to records on the icdr scale.",
    )
    dme: dict[int, dict[str, Presence]] = Field(
        # IDRiD / Messidor risk 0: no hard exudate; 1 and 2: hard exudates, away from or near the macula's centre
        default_factory=lambda: {0: {"EX": "absent"}, 1: {"EX": "present"}, 2: {"EX": "present"}},
        description="Macular edema risk -> {lesion: absent | present}.",
    )


def lesion_presence(record: Record, cfg: PresenceConfig | None = None) -> tuple[int, ...]:
    """Per lesion in :data:`LESIONS` order: ``ABSENT`` (0), ``PRESENT`` (1) or ``UNKNOWN`` (-1).

    Raises:
        ValueError: a rule names a lesion that is not in :data:`LESIONS`.
    """
    cfg = cfg or PresenceConfig()
    implied: dict[str, set[int]] = {lesion: set() for lesion in LESIONS}
    rules = []
    if record.grade is not None and record.grade_scale == "icdr":
        rules.append(cfg.dr.get(record.grade, {}))
    if record.dme is not None:
        rules.append(cfg.dme.get(record.dme, {}))
    if record.dme_partial is not None:  # what every risk the label leaves open implies
        open_rules = [cfg.dme.get(risk, {}) for risk in record.dme_partial]
        rules.append({k: v for k, v in open_rules[0].items() if all(r.get(k) == v for r in open_rules)})
    for rule in rules:
        for lesion, value in rule.items():
            if lesion not in implied:
                raise ValueError(f"presence rule names lesion {lesion!r}; lesions are {', '.join(LESIONS)}")
            implied[lesion].add(_CODE[value])
    return tuple(next(iter(v)) if len(v) == 1 else UNKNOWN for v in implied.values())
