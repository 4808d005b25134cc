"""COMIC (Correction, Modification, Balance) for long-tailed, partially labelled multi-label classification."""

from comic.env import apply_defaults

apply_defaults()
