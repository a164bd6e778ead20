"""How good a trained run is: held-out likelihoods, and sample quality on classifier features."""
