"""The audit: its inputs prepared and checked (inputs.py), the audited model (audited.py), the
estimated retrained model (estimate.py), the conductor (pipeline.py), provenance and the sweep."""
