"""esl-reproduce: the ESL-SNNs paper's figures and tables as one command (see cli.py)."""
