"""esl_train."""
