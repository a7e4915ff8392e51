"""The data throughput benchmark runs end to end (its --smoke mode: tiny videos, a few seconds)."""

import contextlib
import io

import pytest

from benchmarks import data_throughput


@pytest.fixture(scope="module")
def smoke_run():
    """(the benchmark's results, what it printed) for one --smoke run."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = data_throughput.main(["--smoke"])
    return result, printed.getvalue()


def test_benchmark_smoke_run(smoke_run):
    result, table = smoke_run
    rows = result["pipelines"]
    assert [row["pipeline"] for row in rows] == [
        "naive (decode from start)",
        "seek",
        "seek, uint8",
        "seek, num_sample=2",
        "seek, num_sample=2, uint8",
    ]
    assert all(row["clips_per_s"] > 0 for row in rows)
    assert "| seek, num_sample=2" in table and "clips/s" in table


def test_per_core_table_reads_every_source_at_every_resolution(smoke_run):
    result, out = smoke_run
    rates = result["sources"]["rates"]
    expected = ["local files", "local files, no decoder scaling", "bytes in memory", "datasets Video column"]
    expected += ["tar shards (streamed)"] if data_throughput.STREAMING_AVAILABLE else []
    expected += ["decord"] if data_throughput.decord is not None else []
    assert list(rates) == expected
    for source in expected:  # measured, not "not measured (...)"
        assert list(rates[source]) == ["320p", "1080p", "4k"]
        assert all(isinstance(rate, float) and rate > 0 for rate in rates[source].values()), (source, rates[source])
    assert "| ours, datasets Video column |" in out
    if data_throughput.decord is None:
        assert "decord: not installed" in out
    else:
        assert all(same for same, _ in result["sources"]["identical"].values())
        assert "| ours / decord, local files |" in out


def test_projection_names_the_num_sample_that_feeds_the_training_step(smoke_run):
    result, out = smoke_run
    projection = result["projection"]
    assert set(projection["rates"]) == {1, 2, 4} and projection["closing_num_sample"] is not None
    assert "Projection to 16 cores" in out and f"num_sample >= {projection['closing_num_sample']} reaches 650" in out


@pytest.mark.skipif(data_throughput.decord is None, reason="decord is installed only where the benchmark runs")
def test_decord_reads_the_same_frames_as_our_reader(tmp_path):
    args = data_throughput.parse_args(["--smoke"])
    index = data_throughput.make_videos(args, str(tmp_path))
    config = data_throughput.VideoClipConfig(num_frames=4, sampling_rate=2, crop_size=32)
    assert data_throughput.frames_match_decord(list(index["path"]), config) == (True, 0)


def test_tables_can_be_measured_alone(capsys):
    result = data_throughput.main(["--smoke", "--tables", "projection", "--num-samples", "1"])
    assert result["pipelines"] is None and result["sources"] is None and set(result["projection"]["rates"]) == {1}
    out = capsys.readouterr().out
    assert "Projection to 16 cores" in out and "| pipeline" not in out and "Per core" not in out
