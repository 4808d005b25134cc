"""COMIC: Correction -> Modification -> Balance for long-tailed, partially labelled multi-label data."""
