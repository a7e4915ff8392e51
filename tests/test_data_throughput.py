"""The data throughput benchmark runs end to end (its --smoke mode: tiny videos, a few seconds)."""

from benchmarks import data_throughput


def test_benchmark_smoke_run(capsys):
    rows = data_throughput.main(["--smoke"])
    assert [row["pipeline"] for row in rows] == [
        "naive (decode from start)", "seek", "seek, uint8", "seek, num_sample=2", "seek, num_sample=2, uint8"
    ]
    assert all(row["clips_per_s"] > 0 for row in rows)
    table = capsys.readouterr().out
    assert "| seek, num_sample=2" in table and "clips/s" in table
