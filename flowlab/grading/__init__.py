"""Grade lab notebooks against their solutions with nbval, safely, for a whole class.

``flowlab grade SUBMISSION...`` (see ``docs/grading.md``): each submission's answer cells run inside
its solution's locked and check cells (:mod:`~flowlab.grading.assemble`), after a scan for code that
tampers with grading (:mod:`~flowlab.grading.tamper`), under ``pytest --nbval-lax`` with limits
(:mod:`~flowlab.grading.runner`), the kernel alone in a bubblewrap sandbox
(:mod:`~flowlab.grading.sandbox`); what ran is verified from outside the kernel
(:mod:`~flowlab.grading.integrity`), the verdicts are scored by cell points against the raw output
(:mod:`~flowlab.grading.scoring`) and written as JSON, a CSV gradebook and feedback files
(:mod:`~flowlab.grading.report`).  Nothing here imports TensorFlow.
"""

from flowlab.grading.command import add_arguments, grade, main
from flowlab.grading.pipeline import Options
from flowlab.grading.runner import Limits

__all__ = ["add_arguments", "main", "grade", "Options", "Limits"]
