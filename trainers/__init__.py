"""One thin trainer per dataset: its defaults, then library calls."""
