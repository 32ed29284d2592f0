"""esl_energy."""
