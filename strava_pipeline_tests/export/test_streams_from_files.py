"""What a file lacks and Strava's streams carry (velocity, grade, moving) is computed close to Strava's.

The simulator writes each archive file from exactly the streams it serves over the API, so decoding its
files and completing them must give back those streams: exactly where the file holds the value, within a
stated tolerance where ``complete_streams`` computes it (GPX holds neither speed nor distance).
"""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from strava_pipeline.export.recordings import decode_recording
from strava_pipeline.simulator import SimulatorConfig, StravaSimulator
from strava_pipeline.simulator.streams import generate
from strava_pipeline.transforms.recorded_streams import complete_streams

FORMATS = ("fit.gz", "gpx", "tcx.gz")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[StravaSimulator, object, zipfile.ZipFile]:
    sim = StravaSimulator(SimulatorConfig(seed=5, start_date=date(2024, 4, 1), end_date=date(2024, 5, 31),
                                          activities=30))
    folder: Path = tmp_path_factory.mktemp("archive")
    with_gps = [a.id for a in sim.app.dataset.ordered()
                if a.summary().get("start_latlng") and not a.summary()["manual"]]
    forced = {activity_id: FORMATS[i % len(FORMATS)] for i, activity_id in enumerate(with_gps)}
    manifest = sim.write_export(folder, file_formats=forced)
    return sim, manifest, zipfile.ZipFile(manifest.path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_completed_streams_match_the_simulators(archive, fmt: str) -> None:
    sim, manifest, zipped = archive
    rows = [a for a in manifest.activities if a.format == fmt and a.filename]
    assert rows, f"the archive has {fmt} files"
    for row in rows:
        streams = generate(sim.app.dataset.get(row.activity_id), sim.app.dataset.seed)
        samples = complete_streams(decode_recording(zipped.read(row.filename), row.filename).samples)
        assert samples.height == len(streams["time"])
        assert samples.get_column("time_s").to_list() == streams["time"]
        velocity = samples.get_column("velocity_mps").to_numpy()
        truth = np.asarray(streams["velocity_smooth"], dtype=float)
        moving = samples.get_column("moving").to_numpy()
        agree = (moving == np.asarray(streams["moving"])).mean()
        if "velocity_smooth" in row.streams:  # the file holds the speed: exact
            assert np.allclose(velocity, truth, atol=0.01)
            assert agree >= 0.99
        else:  # computed from positions: mean error under 0.5 m/s, moving agrees on 99 % of samples
            assert np.nanmean(np.abs(velocity - truth)) < 0.5, row.activity_id
            assert agree >= 0.99, row.activity_id
        if "grade_smooth" in streams and "altitude" in row.streams:
            grade = samples.get_column("grade_pct").to_numpy()
            assert np.nanmean(np.abs(grade - np.asarray(streams["grade_smooth"], dtype=float))) < 1.0
