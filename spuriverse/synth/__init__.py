"""The synthesis stage: counterfactual images (with and without the cue) for accepted candidates."""
