import argparse

from marlstack.bench import cable


def test_bench_rows_compare_against_the_free_flyer():
    parser = argparse.ArgumentParser()
    cable.add_arguments(parser)
    args = parser.parse_args(["--batches", "2", "--teams", "3", "--env-steps", "20", "--chunk", "0"])
    (row,) = cable.run(args)
    assert row.params["mavs"] == 3 and row.params["envs"] == 2 and row.params["substeps"] == 4
    assert row.ours > 0 and row.baseline > 0 and row.higher_is_better
    assert row.ratio == row.ours / row.baseline
