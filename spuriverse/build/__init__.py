"""The benchmark builder: stages over one builder folder (mine, judge, review, synth, verify, publish)."""
