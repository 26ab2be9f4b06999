"""Developer tools of the post-sales pipeline, outside the shipped library (``plugins/postsales``).

``demo``: the deterministic demo data generator (docs/demo-data.md); ``cli``: `make run`,
`make demo`, `make summary`; ``summary``: what those print; ``hubspot_fake``: HubSpot's API on a
local HTTP server, for the tests and the bench. This package
imports the library; the library never imports it, and the image (Dockerfile) does not contain
it. The Makefile's dev targets and pytest put ``devtools/`` on the path next to ``plugins/``;
the Airflow processes (`make airflow`, the containers) do not.
"""
