"""Strava's bulk export archive ("Download your data"): the reader that fills the same tables as the API.

Empty for now; the archive reader lands here (no Dagster: the assets in ``defs`` wire it).
"""
