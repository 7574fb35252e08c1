"""The model: what a platform team demands and what a cluster runs, as plain data.

``policy`` (the ImagePolicy, validated once at load), ``workload`` (every kind normalised to containers and image
references), ``reference`` (image references), ``platform``, ``quantity`` (sizes), ``globs``, ``tools`` (the
categories ``forbiddenTools`` names) and ``image_check`` (an image checked on its own, as a workload of one).
Imports nothing of core but ``errors``.
"""
