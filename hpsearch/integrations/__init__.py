"""Ready-made glue between hpsearch's `TrialContext` and training libraries.

Each integration is its own module that imports its library only when imported itself, so
``import hpsearch`` never needs them: ``from hpsearch.integrations.lightning import Report``
(``pip install 'hpsearch[lightning]'``).
"""
