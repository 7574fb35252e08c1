"""Facts about images and the codecs of the outside formats they are read from or kept in.

``image_facts`` (ImageFacts, and FactsNeeds: what to read of an image), ``bases`` (an image's bases, found and
measured), ``content`` and ``content_analysis`` (what the layers hold), ``packages`` (OS package databases);
the codecs: ``oci`` and ``media_types`` (registry documents), ``local_image`` (the Docker engine's answers),
``image_report`` (slimguard's ImageReport) and ``vulnerabilities`` (Trivy Operator's VulnerabilityReports).
Reads the model; knows nothing of policies' evaluation.
"""
