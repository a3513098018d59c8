"""the benchmark curation stage: stages over one curation folder (mine, judge, review, synth, verify, publish)."""
