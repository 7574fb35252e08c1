"""Admission: the validating webhook that rejects bloated images before they run."""
