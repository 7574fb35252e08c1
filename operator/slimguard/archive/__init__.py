"""Image archives as a facts source (``slimguard check --input``): ``docker save`` tarballs and OCI image layouts,
as directories or tars, read in place."""

from slimguard.archive.facts import Archive, ArchiveFacts, open_archive

__all__ = ["Archive", "ArchiveFacts", "open_archive"]
