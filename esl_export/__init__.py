"""esl_export."""
