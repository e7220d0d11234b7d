"""strava_pipeline."""
