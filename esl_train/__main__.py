"""``python -m esl_train`` (and ``torchrun -m esl_train``): esl-train with the same flags."""

from esl_train.cli_common import esl_train

raise SystemExit(esl_train())
