"""spuriverse: benchmark suite and leaderboard for spurious correlations in vision-language models."""

__version__ = "0.1.0"
