"""Learning by tweaking: sweeps over settings, the figures, and the reports that show them."""
